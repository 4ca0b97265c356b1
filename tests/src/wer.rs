//! Word error rate, with the normalisation read-speech references need: case,
//! punctuation, hyphens, digits spelled out, common abbreviations expanded.
//! Applied identically to every system being compared.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

fn spell(n: u32) -> Vec<String> {
    match n {
        0..=19 => vec![ONES[n as usize].into()],
        20..=99 if n.is_multiple_of(10) => vec![TENS[(n / 10) as usize].into()],
        20..=99 => vec![
            TENS[(n / 10) as usize].into(),
            ONES[(n % 10) as usize].into(),
        ],
        _ => vec![n.to_string()],
    }
}

/// Normalised words of `text`.
pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['-', '—', '–'], " ");
    let mut out = Vec::new();
    for raw in lower.split_whitespace() {
        let w: String = raw
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .collect();
        let w = w.trim_matches('\'');
        if w.is_empty() {
            continue;
        }
        match w {
            "mr" => out.push("mister".into()),
            "mrs" => out.push("missus".into()),
            "dr" => out.push("doctor".into()),
            _ => match w.parse::<u32>() {
                Ok(n) => out.extend(spell(n)),
                Err(_) => out.push(w.to_string()),
            },
        }
    }
    out
}

/// Word-level edit distance between a hypothesis and a reference.
pub fn word_errors(hyp: &[String], reference: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=hyp.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, h) in hyp.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(r != h)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[hyp.len()]
}

/// The pocketsphinx-testdata utterances: `(wav path, reference text)`, read
/// speech (librivox) then card names (cards).
pub fn pocketsphinx_set() -> Vec<(std::path::PathBuf, String)> {
    let base = std::path::Path::new("/usr/share/pocketsphinx/test/data");
    let mut out = Vec::new();
    for (dir, listing) in [
        ("librivox", "transcription"),
        ("cards", "cards.transcription"),
    ] {
        let Ok(text) = std::fs::read_to_string(base.join(dir).join(listing)) else {
            continue;
        };
        for line in text.lines() {
            if let Some((words, id)) = line.rsplit_once(" (") {
                let reference = words.replace("<s>", "").replace("</s>", "");
                out.push((
                    base.join(dir)
                        .join(format!("{}.wav", id.trim_end_matches(')'))),
                    reference.trim().to_string(),
                ));
            }
        }
    }
    out
}

/// Every [`pocketsphinx_set`] utterance in order with a second of silence
/// after each, written once into `dir`: the speech the ASR and memory
/// benchmarks both run on. Returns the file and its reference text.
pub fn pocketsphinx_joined(dir: &std::path::Path) -> Result<(std::path::PathBuf, String), String> {
    let set = pocketsphinx_set();
    if set.is_empty() {
        return Err("pocketsphinx-testdata is not installed (scripts/setup.sh)".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let silence = dir.join("silence-1s-16k.wav");
    let out = dir.join("pocketsphinx-joined.wav");
    crate::audio::silence(&silence, 1.0)?;
    let mut parts: Vec<&std::path::Path> = Vec::new();
    for (wav, _) in &set {
        parts.push(wav);
        parts.push(&silence);
    }
    crate::audio::join(&parts, &out)?;
    let reference = set
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Ok((out, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_a_reference_transcript() {
        assert_eq!(
            normalize("Mr. Dashwood, 10 of clubs -- well-known!"),
            ["mister", "dashwood", "ten", "of", "clubs", "well", "known"]
        );
        assert_eq!(normalize("It's 42."), ["it's", "forty", "two"]);
    }

    #[test]
    fn counts_substitutions_insertions_deletions() {
        let r = normalize("the cat sat on the mat");
        assert_eq!(word_errors(&normalize("the cat sat on the mat"), &r), 0);
        assert_eq!(word_errors(&normalize("a cat sat on mat today"), &r), 3);
    }
}
