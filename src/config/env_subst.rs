//! `${VAR}` substitution in configuration text (SPEC §2), before YAML.
//!
//! Owns the substitution and the small lexer that finds where a YAML comment
//! starts, so that a `${VAR}` in a comment is left alone (commented-out
//! lines often name variables that are not set). `$${` stays a literal `${`.
//! Works on text, line by line, and reports every unset variable with its
//! line and column; it knows nothing of the configuration's keys.

/// Replaces `${VAR}` from the environment outside YAML comments; `$${` is a literal `${`.
pub(super) fn substitute_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let comment = comment_start(line);
        let (body, rest) = line.split_at(comment);
        let mut i = 0;
        let bytes = body.as_bytes();
        while i < body.len() {
            if body[i..].starts_with("$${") {
                out.push_str("${");
                i += 3;
            } else if body[i..].starts_with("${") {
                if let Some(end) = body[i + 2..].find('}') {
                    let var = &body[i + 2..i + 2 + end];
                    match lookup(var) {
                        Some(value) => out.push_str(&value),
                        None => problems.push(format!(
                            "environment variable `{var}` is not set (used at line {} column {})",
                            number + 1,
                            i + 1
                        )),
                    }
                    i += end + 3;
                } else {
                    out.push_str("${");
                    i += 2;
                }
            } else {
                let ch_len = utf8_len(bytes[i]);
                out.push_str(&body[i..i + ch_len]);
                i += ch_len;
            }
        }
        out.push_str(rest);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// Byte offset where a YAML comment starts on this line (or its length).
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, ch) in line.char_indices() {
        match quote {
            Some(q) if ch == q => quote = None,
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '#' && previous.is_whitespace() => return i,
            Some(_) | None => {}
        }
        previous = ch;
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(var: &str) -> Option<String> {
        match var {
            "KEY" => Some("secret".into()),
            _ => None,
        }
    }

    #[test]
    fn env_substitution_cases() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("key: ${KEY}\n", Ok("key: secret\n")),
            ("key: $${KEY}\n", Ok("key: ${KEY}\n")),
            ("key: x # ${UNSET}\n", Ok("key: x # ${UNSET}\n")),
            ("key: 'a # ${KEY}'\n", Ok("key: 'a # secret'\n")),
            (
                "a: 1\nkey: ${UNSET}\n",
                Err("environment variable `UNSET` is not set (used at line 2 column 6)"),
            ),
        ];
        for (text, want) in cases {
            let got = substitute_env(text, &lookup);
            match want {
                Ok(want) => assert_eq!(got.as_deref(), Ok(*want), "{text}"),
                Err(want) => assert_eq!(got.unwrap_err(), vec![(*want).to_string()], "{text}"),
            }
        }
    }
}
