//! Key templates: `"user:<id>:<q.lang>"`. A pure `&str` parser that returns
//! the segments or every error it found, each with the byte offset where it
//! starts. Names are checked against the function's parameters later, in
//! the expansion, where the parameters are known.

/// A parsed template.
#[derive(Debug, PartialEq)]
pub(crate) struct Template {
    pub(crate) segments: Vec<Segment>,
}

/// Literal text or a placeholder.
#[derive(Debug, PartialEq)]
pub(crate) enum Segment {
    Lit(String),
    Hole(Placeholder),
}

/// `<a.b.c>`: a parameter and a field path into it.
#[derive(Debug, PartialEq)]
pub(crate) struct Placeholder {
    /// `["a", "b", "c"]`
    pub(crate) path: Vec<String>,
    /// `"<a.b.c>"`, as written, for messages.
    pub(crate) text: String,
}

/// One problem in a template.
#[derive(Debug, PartialEq)]
pub(crate) struct TemplateError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && s != "_"
}

/// A tuple field: `0`, `1`, ... as rustc accepts them (no leading zero, fits u32).
fn is_index(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u32>().is_ok()
}

/// Checks the inside of `<...>`: an identifier, then `.field` or `.0` parts.
fn placeholder(inner: &str) -> Result<Vec<String>, String> {
    let text = format!("<{inner}>");
    if inner.is_empty() {
        return Err("empty placeholder `<>`: write a parameter name, like `<id>`".into());
    }
    if inner.chars().any(char::is_whitespace) {
        return Err(format!(
            "placeholder `{text}` contains whitespace: write `<name>` or `<name.field>` with no spaces"
        ));
    }
    let path: Vec<&str> = inner.split('.').collect();
    let valid = is_ident(path[0]) && path[1..].iter().all(|p| is_ident(p) || is_index(p));
    if !valid {
        return Err(format!(
            "invalid placeholder `{text}`: expected a parameter name or a field path, like `<id>` or `<user.id>`"
        ));
    }
    Ok(path.into_iter().map(str::to_owned).collect())
}

/// Parses a key template.
pub(crate) fn parse(template: &str) -> Result<Template, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut err = |offset, message: String| errors.push(TemplateError { offset, message });
    if template.is_empty() {
        err(
            0,
            "empty key template: write literal text and placeholders, like \"user:<id>\"".into(),
        );
    }

    // The placeholder seen last, and whether a `:` followed it since.
    let mut previous: Option<String> = None;
    let mut separated = true;
    // A `{` was reported and its `}` has not been seen yet.
    let mut after_brace = false;
    let mut rest = template.char_indices().peekable();
    while let Some((at, c)) = rest.next() {
        match c {
            '<' => {
                let mut inner = String::new();
                let mut closed = false;
                while let Some(&(_, next)) = rest.peek() {
                    if next == '<' {
                        break;
                    }
                    rest.next();
                    if next == '>' {
                        closed = true;
                        break;
                    }
                    inner.push(next);
                }
                if !closed {
                    err(
                        at,
                        format!("unclosed `<` at byte {at}: placeholders are written `<name>`"),
                    );
                    continue;
                }
                match placeholder(&inner) {
                    Ok(path) => {
                        let text = format!("<{inner}>");
                        if let (Some(prev), false) = (&previous, separated) {
                            err(
                                at,
                                format!(
                                    "placeholders `{prev}` and `{text}` must be separated by `:`, \
                                 or two different argument values could build the same key"
                                ),
                            );
                        }
                        if !literal.is_empty() {
                            segments.push(Segment::Lit(std::mem::take(&mut literal)));
                        }
                        previous = Some(text.clone());
                        separated = false;
                        segments.push(Segment::Hole(Placeholder { path, text }));
                    }
                    Err(message) => err(at, message),
                }
            }
            '>' => err(
                at,
                format!("stray `>` at byte {at}: placeholders are written `<name>`"),
            ),
            // One error for a pair: `{id}` is one mistake (format syntax).
            '}' if after_brace => after_brace = false,
            '{' | '}' => {
                after_brace = c == '{';
                err(at, format!(
                    "`{c}` at byte {at} is reserved: braces would change the key's Redis Cluster hash slot; \
                     placeholders are written `<name>`"
                ));
            }
            '\\' => err(
                at,
                format!(
                "`\\` at byte {at} is reserved: it escapes separators inside placeholder values"
            ),
            ),
            c => {
                separated |= c == ':';
                literal.push(c);
            }
        }
    }
    if !literal.is_empty() {
        segments.push(Segment::Lit(literal));
    }
    if errors.is_empty() {
        Ok(Template { segments })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Lit(s.into())
    }

    fn hole(path: &[&str]) -> Segment {
        Segment::Hole(Placeholder {
            path: path.iter().map(|s| s.to_string()).collect(),
            text: format!("<{}>", path.join(".")),
        })
    }

    fn messages(template: &str) -> Vec<String> {
        parse(template)
            .unwrap_err()
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn parses_literals_and_placeholders() {
        let t = parse("user:<id>:<q.lang>:<pair.0>").unwrap();
        assert_eq!(
            t.segments,
            vec![
                lit("user:"),
                hole(&["id"]),
                lit(":"),
                hole(&["q", "lang"]),
                lit(":"),
                hole(&["pair", "0"])
            ]
        );
        assert_eq!(parse("all-users").unwrap().segments, vec![lit("all-users")]);
        assert_eq!(
            parse("<self.tenant>").unwrap().segments,
            vec![hole(&["self", "tenant"])]
        );
        assert_eq!(
            parse("<id>-suffix").unwrap().segments,
            vec![hole(&["id"]), lit("-suffix")]
        );
    }

    #[test]
    fn reports_offsets() {
        let errors = parse("ab<x").unwrap_err();
        assert_eq!(errors[0].offset, 2);
        let errors = parse("abc>").unwrap_err();
        assert_eq!(errors[0].offset, 3);
    }

    #[test]
    fn rejects_malformed_placeholders() {
        assert!(messages("user:<id")[0].starts_with("unclosed `<`"));
        assert!(messages("user:<a<b>")[0].starts_with("unclosed `<`"));
        assert!(messages("user:id>")[0].starts_with("stray `>`"));
        assert!(messages("user:<>")[0].starts_with("empty placeholder"));
        assert!(messages("user:<id >")[0].contains("whitespace"));
        assert!(messages("user:< id>")[0].contains("whitespace"));
        for junk in [
            "<a-b>",
            "<1a>",
            "<a..b>",
            "<a.>",
            "<.a>",
            "<a()>",
            "<_>",
            "<a.01>",
            "<a.4294967296>",
        ] {
            assert!(
                messages(junk)[0].starts_with("invalid placeholder"),
                "{junk}"
            );
        }
        assert!(messages("")[0].starts_with("empty key template"));
    }

    #[test]
    fn rejects_reserved_characters() {
        assert!(messages("{user}:<id>")[0].contains("reserved"));
        assert_eq!(
            messages("user:{id}").len(),
            1,
            "a pair of braces is one mistake"
        );
        assert_eq!(messages("a}b{c").len(), 2);
        assert!(messages(r"user\:<id>")[0].contains("reserved"));
    }

    #[test]
    fn requires_a_separator_between_placeholders() {
        assert!(messages("<a><b>")[0].contains("must be separated by `:`"));
        assert!(messages("<a>-<b>")[0].contains("must be separated by `:`"));
        assert!(parse("<a>:<b>").is_ok());
        assert!(parse("<a>-x:y-<b>").is_ok());
    }

    #[test]
    fn reports_every_error() {
        assert_eq!(messages("<> > <a b>").len(), 3);
    }
}
