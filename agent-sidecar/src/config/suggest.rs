//! The nearest valid key to a misspelt one ("did you mean").

/// The candidate closest to `word` by edit distance, if it is close
/// enough to be a likely typo (at most a third of its length, at least 1,
/// or `word` is a prefix or suffix of it).
pub(super) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normal = word.replace('_', "-").to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&normal, c), c))
        .filter(|(d, c)| {
            *d <= (normal.len() / 3).max(1)
                || (normal.len() >= 3 && (c.starts_with(&normal) || c.ends_with(&normal)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}
