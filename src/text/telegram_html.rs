//! What Telegram's HTML parse mode accepts, checked before anything is sent: a message Telegram
//! rejects ("can't parse entities") would fail for every recipient at once. And the same HTML as
//! the console previews it: Telegram's documented tags with only their documented attributes,
//! through an allow-list ([`rich`]); anything else is shown as text, never as markup.

use std::collections::BTreeMap;

use serde::Serialize;

/// Escapes what Telegram's HTML parse mode would read as markup. Telegram knows only the named
/// entities `&lt; &gt; &amp; &quot;`, so handlebars' default (which also writes `&#x27;` …) is
/// not used.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

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

/// A piece of a Telegram message as the console previews it: text, or one of Telegram's tags
/// with only the attributes Telegram documents for it. In JSON, a text is a string and an
/// element is `{"tag": "b", "attrs": {…}, "children": […]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RichNode {
    Text(String),
    Element {
        tag: &'static str,
        attrs: BTreeMap<&'static str, String>,
        children: Vec<RichNode>,
    },
}

/// Telegram HTML as a tree of allowed tags and text: entities decoded, attributes Telegram does
/// not document dropped, `href` only with an `http`, `https` or `tg` scheme, and any tag that
/// is not Telegram's (or does not balance) kept as the literal text it was written as.
pub fn rich(html: &str) -> Vec<RichNode> {
    /// A tag opened and not yet closed.
    struct Open {
        tag: &'static str,
        attrs: BTreeMap<&'static str, String>,
        children: Vec<RichNode>,
        /// As written, shown as text if it never closes.
        written: String,
    }
    /// Where text and elements go now: the innermost open tag, or the top.
    struct Tree {
        root: Vec<RichNode>,
        open: Vec<Open>,
    }
    impl Tree {
        fn current(&mut self) -> &mut Vec<RichNode> {
            match self.open.last_mut() {
                Some(open) => &mut open.children,
                None => &mut self.root,
            }
        }
        fn text(&mut self, text: &str) {
            if text.is_empty() {
                return;
            }
            let nodes = self.current();
            match nodes.last_mut() {
                Some(RichNode::Text(t)) => t.push_str(text),
                _ => nodes.push(RichNode::Text(text.to_string())),
            }
        }
        fn node(&mut self, node: RichNode) {
            match node {
                RichNode::Text(t) => self.text(&t),
                element => self.current().push(element),
            }
        }
    }
    let mut tree = Tree {
        root: Vec::new(),
        open: Vec::new(),
    };
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        tree.text(&decode(&rest[..i]));
        let at = &rest[i..];
        let Some(end) = at.find('>') else {
            tree.text(&decode(at));
            rest = "";
            break;
        };
        let written = &at[..=end];
        let inner = &at[1..end];
        rest = &at[end + 1..];
        if let Some(name) = inner.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            match tree.open.pop() {
                Some(open) if open.tag == name => tree.node(RichNode::Element {
                    tag: open.tag,
                    attrs: open.attrs,
                    children: open.children,
                }),
                other => {
                    tree.open.extend(other);
                    tree.text(&decode(written));
                }
            }
            continue;
        }
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        match TAGS.iter().find(|t| **t == name) {
            Some(&tag) => tree.open.push(Open {
                tag,
                attrs: allowed_attributes(tag, &inner[name.len()..]),
                children: Vec::new(),
                written: written.to_string(),
            }),
            None => tree.text(&decode(written)),
        }
    }
    tree.text(&decode(rest));
    // A tag never closed: Telegram would refuse the message; show what was written.
    while let Some(open) = tree.open.pop() {
        tree.text(&decode(&open.written));
        for child in open.children {
            tree.node(child);
        }
    }
    tree.root
}

/// The attributes Telegram documents for `tag`, from the text after the tag's name.
fn allowed_attributes(tag: &str, text: &str) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for (name, value) in attributes(text) {
        let value = decode(&value);
        match (tag, name.as_str()) {
            ("a", "href") if safe_href(&value) => {
                out.insert("href", value);
            }
            ("span", "class") if value == "tg-spoiler" => {
                out.insert("class", value);
            }
            ("code", "class")
                if value.strip_prefix("language-").is_some_and(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+-_#.".contains(c))
                }) =>
            {
                out.insert("class", value);
            }
            ("tg-emoji", "emoji-id")
                if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) =>
            {
                out.insert("emoji-id", value);
            }
            ("blockquote", "expandable") => {
                out.insert("expandable", String::new());
            }
            _ => {}
        }
    }
    out
}

/// A link a reader may follow: http, https or tg, nothing hidden in it.
fn safe_href(href: &str) -> bool {
    let lower = href.to_ascii_lowercase();
    ["http://", "https://", "tg://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
        && !href.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `name="value"`, `name='value'`, `name=value` and bare `name`, in order.
fn attributes(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.trim_end_matches('/').chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=' && *c != '/'))
                .collect();
        if name.is_empty() {
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let value = if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.peek() {
                Some(&quote) if quote == '"' || quote == '\'' => {
                    chars.next();
                    let v: String = std::iter::from_fn(|| chars.next_if(|c| *c != quote)).collect();
                    chars.next();
                    v
                }
                _ => std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect(),
            }
        } else {
            String::new()
        };
        out.push((name.to_ascii_lowercase(), value));
    }
    out
}

/// Text with the entities Telegram knows decoded: `&lt; &gt; &amp; &quot;` and numeric ones.
fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        let entity = at.find(';').filter(|&e| e <= 10).map(|e| &at[1..e]);
        let decoded = entity.and_then(|e| match e {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            _ => e
                .strip_prefix("#x")
                .or_else(|| e.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        });
        match (entity, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &at[e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &at[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The preview as HTML for a page: every text escaped, only the allowed tags and attributes.
pub fn rich_to_html(nodes: &[RichNode]) -> String {
    // Attribute values are always double-quoted, so Telegram's own escaping (& < > ") is enough.
    fn push_escaped(text: &str, out: &mut String) {
        out.push_str(&escape(text));
    }
    fn write(nodes: &[RichNode], out: &mut String) {
        for node in nodes {
            match node {
                RichNode::Text(t) => push_escaped(t, out),
                RichNode::Element {
                    tag,
                    attrs,
                    children,
                } => {
                    out.push('<');
                    out.push_str(tag);
                    for (name, value) in attrs {
                        out.push(' ');
                        out.push_str(name);
                        out.push_str("=\"");
                        push_escaped(value, out);
                        out.push('"');
                    }
                    out.push('>');
                    write(children, out);
                    out.push_str("</");
                    out.push_str(tag);
                    out.push('>');
                }
            }
        }
    }
    let mut out = String::new();
    write(nodes, &mut out);
    out
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

    #[test]
    fn previews_keep_telegram_tags_and_nothing_else() {
        let html = "<b>Đậm</b> <a href=\"https://dichvucong.gov.vn\" onclick=\"x()\">link</a> \
                    <span class=\"tg-spoiler\" style=\"x\">ẩn</span> &lt;3";
        assert_eq!(
            rich_to_html(&rich(html)),
            "<b>Đậm</b> <a href=\"https://dichvucong.gov.vn\">link</a> \
             <span class=\"tg-spoiler\">ẩn</span> &lt;3"
        );
    }

    #[test]
    fn previews_never_carry_script() {
        for evil in [
            "<span autofocus onfocus=alert(1)>x</span>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\" javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=javascript:alert(1)>x</a>",
            "<img src=x onerror=alert(1)>",
            "<script>alert(1)</script>",
            "<b onmouseover='alert(1)'>x</b>",
            "<svg/onload=alert(1)>",
            "<code class=\"language-x\\\" onclick=\\\"y\">x</code>",
            "<a href=\"https://x.vn\" href=\"javascript:y\">x</a>",
            "<tg-emoji emoji-id=\"1\\\" onload=\\\"x\">x</tg-emoji>",
        ] {
            let out = rich_to_html(&rich(evil));
            let tags: Vec<&str> = out.split('<').skip(1).collect();
            for tag in tags {
                let tag = tag.split('>').next().unwrap().to_lowercase();
                assert!(
                    !tag.contains("on") || tag.starts_with("/"),
                    "{evil:?} gave {out:?}"
                );
                assert!(!tag.contains("javascript"), "{evil:?} gave {out:?}");
                assert!(
                    !tag.starts_with("script")
                        && !tag.starts_with("img")
                        && !tag.starts_with("svg"),
                    "{evil:?} gave {out:?}"
                );
            }
        }
        // Unknown tags are shown as the text they were written as.
        assert_eq!(
            rich(" <img src=x>"),
            vec![RichNode::Text(" <img src=x>".into())]
        );
    }

    #[test]
    fn unbalanced_tags_are_text() {
        assert_eq!(rich_to_html(&rich("<b>x")), "&lt;b&gt;x");
        assert_eq!(rich_to_html(&rich("x</i>")), "x&lt;/i&gt;");
        assert_eq!(
            rich_to_html(&rich("<b><i>x</b>")),
            "&lt;b&gt;&lt;i&gt;x&lt;/b&gt;"
        );
        assert_eq!(
            rich_to_html(&rich("a &amp; b &#33; &bogus;")),
            "a &amp; b ! &amp;bogus;"
        );
    }
}
