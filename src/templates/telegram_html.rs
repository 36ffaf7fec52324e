//! What Telegram's HTML parse mode accepts, checked before anything is sent: a message Telegram
//! rejects ("can't parse entities") would fail for every recipient at once.

/// Tags Telegram supports (Bot API, "HTML style").
const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

/// The first thing Telegram would reject in `html`, if any.
pub fn validate(html: &str) -> Result<(), String> {
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        let (before, at) = rest.split_at(i);
        let _ = before;
        if at.starts_with('&') {
            let end = at
                .find(';')
                .filter(|&e| e <= 10)
                .ok_or("a bare '&': write &amp;")?;
            let entity = &at[1..end];
            let known = matches!(entity, "lt" | "gt" | "amp" | "quot")
                || entity
                    .strip_prefix("#x")
                    .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
                || entity
                    .strip_prefix('#')
                    .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
            if !known {
                return Err(format!(
                    "unsupported entity &{entity}; (Telegram knows &lt; &gt; &amp; &quot; and numeric ones)"
                ));
            }
            rest = &at[end + 1..];
            continue;
        }
        let end = at.find('>').ok_or("a bare '<': write &lt;")?;
        let inner = &at[1..end];
        if let Some(name) = inner.strip_prefix('/') {
            let name = name.trim();
            match open.pop() {
                Some(top) if top == name => {}
                Some(top) => return Err(format!("</{name}> closes <{top}>")),
                None => return Err(format!("</{name}> closes nothing")),
            }
        } else {
            let name: String = inner
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if name.is_empty() {
                return Err("a bare '<': write &lt;".to_string());
            }
            if !TAGS.contains(&name.as_str()) {
                return Err(format!(
                    "unsupported tag <{name}> (Telegram supports {})",
                    TAGS.join(", ")
                ));
            }
            open.push(name);
        }
        rest = &at[end + 1..];
    }
    match open.pop() {
        Some(tag) => Err(format!("<{tag}> is never closed")),
        None => Ok(()),
    }
}

/// The text a reader sees: tags removed, entities decoded. Telegram's 4096 limit counts this.
pub fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_telegram_accepts() {
        assert!(
            validate("<b>Chào</b> &amp; <i>mừng</i> <a href=\"https://x.vn\">x</a> &#8220;")
                .is_ok()
        );
    }

    #[test]
    fn rejects_what_telegram_rejects() {
        assert!(validate("a < b").unwrap_err().contains("bare '<'"));
        assert!(validate("Tom & Jerry").unwrap_err().contains("bare '&'"));
        assert!(validate("<b>x</i>").unwrap_err().contains("closes <b>"));
        assert!(validate("<b>x").unwrap_err().contains("never closed"));
        assert!(
            validate("<div>x</div>")
                .unwrap_err()
                .contains("unsupported tag <div>")
        );
        assert!(
            validate("&nbsp;")
                .unwrap_err()
                .contains("unsupported entity")
        );
    }

    #[test]
    fn visible_text_drops_markup() {
        assert_eq!(visible_text("<b>A &amp; B</b>"), "A & B");
    }
}
