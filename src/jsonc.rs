//! JSON with comments and trailing commas (JSONC), as devcontainer.json files allow:
//! reduced to plain JSON of the same length, so that error positions stay right.

/// `text` with `//` and `/* */` comments and trailing commas (before `}` or `]`)
/// replaced by spaces; line breaks and everything in strings are kept.
pub fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' if i + 1 < bytes.len() => {
                    out.push(bytes[i + 1]);
                    i += 1;
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match (b, bytes.get(i + 1)) {
            (b'"', _) => {
                in_string = true;
                out.push(b);
                i += 1;
            }
            (b'/', Some(b'/')) => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                out.extend_from_slice(b"  ");
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                    i += 1;
                }
                // An unclosed comment runs to the end; the JSON parser reports the rest.
                let end = (i + 2).min(bytes.len());
                out.extend(std::iter::repeat_n(b' ', end - i));
                i = end;
            }
            (b'}' | b']', _) => {
                if let Some(comma) = out.iter().rposition(|c| !c.is_ascii_whitespace())
                    && out[comma] == b','
                {
                    out[comma] = b' ';
                }
                out.push(b);
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were replaced by ASCII spaces: still valid UTF-8.
    String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_become_spaces() {
        let text = "{\n  // a comment\n  \"a\": [1, 2,], /* block\n more */ \"b\": \"x // y /* z */\",\n}\n";
        let plain = strip(text);
        assert_eq!(plain.len(), text.len());
        assert_eq!(plain.lines().count(), text.lines().count());
        let value: serde_json::Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": [1, 2], "b": "x // y /* z */"})
        );
    }

    #[test]
    fn escaped_quotes_and_broken_input() {
        let plain = strip(r#"{"a": "say \"hi\" // not a comment"}"#);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&plain).unwrap()["a"],
            r#"say "hi" // not a comment"#
        );
        // Unclosed strings and comments do not panic; the parser reports them.
        for broken in ["{\"a", "{/* never closed", "/", "\"\\", "é//"] {
            let _ = strip(broken);
        }
    }
}
