"""Validates OCSF events with the ocsf-emitter package (OCSF 1.5.0 schema
and invariants, offline): one JSON object per line of the file named by
argv[1]. Prints one line per invalid event and `valid N of M`; exits 1 if
any event is invalid."""

import json
import sys

from ocsf_emitter import InvalidFindingError, models, validate

CLASSES = {2004: models.DetectionFinding}


def main() -> int:
    total = bad = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            total += 1
            event = json.loads(line)
            cls = CLASSES.get(event.get("class_uid"))
            if cls is None:
                bad += 1
                print(f"event {total}: unexpected class_uid {event.get('class_uid')!r}")
                continue
            try:
                validate(cls.model_validate(event))
            except InvalidFindingError as e:
                bad += 1
                print(f"event {total}: {e}: {e.field_errors}")
            except Exception as e:  # pydantic's ValidationError
                bad += 1
                print(f"event {total}: {type(e).__name__}: {e}")
    print(f"valid {total - bad} of {total}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
