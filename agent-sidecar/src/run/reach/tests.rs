use std::os::unix::fs::PermissionsExt;

use super::*;

/// A user that owns nothing here and is in no group here.
const STRANGER: UserSpec = UserSpec {
    uid: 4_000_017,
    gid: 4_000_017,
};

/// A fresh directory under the system temporary directory, with `mode`.
fn dir(name: &str, mode: u32) -> PathBuf {
    let d = std::env::temp_dir().join(format!("reach-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    d
}

fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

#[test]
fn a_command_behind_a_private_directory_names_the_directory_and_the_fix() {
    let home = dir("private", 0o700);
    let agent = file(&home, "agent", "#!/bin/sh\n", 0o755);
    let err = check_executable(&agent, STRANGER).unwrap_err();
    assert_eq!(err.file, agent);
    assert!(
        err.why.contains(&format!("{} (mode 0700", home.display())),
        "{err}"
    );
    assert!(
        err.why.contains(&format!("chmod o+x {}", home.display())),
        "{err}"
    );
    assert!(err.why.contains("--user"), "{err}");
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_reachable_script_with_a_reachable_interpreter_passes() {
    let open = dir("open", 0o755);
    let agent = file(&open, "agent", "#!/bin/sh -e\necho hi\n", 0o755);
    assert_eq!(check_executable(&agent, STRANGER), Ok(()));
    // The owner's triplet decides for the owner.
    let mine = file(&open, "mine", "#!/bin/sh\n", 0o700);
    let me = std::fs::metadata(&mine).unwrap();
    let owner = UserSpec {
        uid: me.uid(),
        gid: me.gid(),
    };
    assert_eq!(check_executable(&mine, owner), Ok(()));
    let err = check_executable(&mine, STRANGER).unwrap_err();
    assert!(err.why.contains("may not execute it (mode 0700"), "{err}");
    std::fs::remove_dir_all(&open).unwrap();
}

#[test]
fn an_interpreter_out_of_reach_is_named() {
    let private = dir("interp-private", 0o700);
    let interpreter = file(&private, "python", "", 0o755);
    let open = dir("interp-open", 0o755);
    let agent = file(
        &open,
        "agent.py",
        &format!("#!{} -u\n", interpreter.display()),
        0o755,
    );
    let err = check_executable(&agent, STRANGER).unwrap_err();
    assert!(
        err.why.contains(&format!(
            "the interpreter of its #! line, {}",
            interpreter.display()
        )),
        "{err}"
    );
    // A script the interpreter could not read is refused too.
    let unreadable = file(&open, "secret.py", "#!/bin/sh\n", 0o711);
    let err = check_executable(&unreadable, STRANGER).unwrap_err();
    assert!(err.why.contains("may not read it"), "{err}");
    std::fs::remove_dir_all(&private).unwrap();
    std::fs::remove_dir_all(&open).unwrap();
}

#[test]
fn arguments_that_name_unreadable_files_are_reported_and_others_ignored() {
    let open = dir("args", 0o755);
    let readable = file(&open, "ok.py", "print(1)\n", 0o644);
    let unreadable = file(&open, "no.py", "print(1)\n", 0o600);
    let args = [
        "-u".to_string(),
        readable.display().to_string(),
        unreadable.display().to_string(),
        "not/a/file".to_string(),
        String::new(),
    ];
    let found = unreadable_arguments(&args, STRANGER);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].file, unreadable);
    assert!(found[0].why.contains("chmod o+r"), "{}", found[0]);
    std::fs::remove_dir_all(&open).unwrap();
}

#[test]
fn a_symlink_is_followed_to_where_it_points() {
    let private = dir("link-private", 0o700);
    let target = file(&private, "agent", "", 0o755);
    let open = dir("link-open", 0o755);
    let link = open.join("agent");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = check_executable(&link, STRANGER).unwrap_err();
    assert!(err.why.contains(&private.display().to_string()), "{err}");
    std::fs::remove_dir_all(&private).unwrap();
    std::fs::remove_dir_all(&open).unwrap();
}
