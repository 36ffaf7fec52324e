//! The shipped messages as a reader sees them: names of places written as Vietnamese writes
//! them inside a sentence, in every kind of commune.

mod common;

use common::repo_root;
use loa::app::Setup;
use loa::config::{AreaKind, Env};
use loa::templates::{AreaVars, MessageContext, SampleData};

/// Proper names in which a capitalised kind word follows other words legitimately.
const ALLOWED: [&str; 2] = ["Thành phố Hồ Chí Minh", "Hội Liên hiệp Phụ nữ"];

/// `text`'s capitalised kind words ("Xã", "Thị trấn", …) that follow a word in lower case,
/// i.e. stand inside a sentence: each with the words around it.
fn capitals_inside_sentences(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut text = text.to_string();
    for allowed in ALLOWED {
        text = text.replace(allowed, "");
    }
    for kind in AreaKind::ALL {
        let title = kind.title();
        let mut from = 0;
        while let Some(at) = text[from..].find(&title) {
            let at = from + at;
            from = at + title.len();
            let before = text[..at].trim_end_matches(' ');
            // A word right before it, ending in a lower-case letter: mid-sentence; and a
            // name after it ("Xã hội", society, is no place).
            let inside =
                text[..at].ends_with(' ') && before.chars().last().is_some_and(char::is_lowercase);
            let names_a_place = text[from..]
                .strip_prefix(' ')
                .and_then(|rest| rest.chars().next())
                .is_some_and(char::is_uppercase);
            let inside = inside && names_a_place;
            if inside {
                let start = before.char_indices().rev().nth(20).map_or(0, |(i, _)| i);
                let end = (from + 20).min(text.len());
                let end = (end..=text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                found.push(text[start..end].to_string());
            }
        }
    }
    found
}

#[test]
fn the_finder_sees_what_it_must() {
    assert_eq!(
        capitals_inside_sentences("chúc chị em Xã Thường Thắng sức khỏe").len(),
        1
    );
    assert!(capitals_inside_sentences("Kính gửi ông/bà Lan (Xã Thường Thắng),").is_empty());
    assert!(capitals_inside_sentences("chị em xã Thường Thắng. Xã hội bình đẳng").is_empty());
    assert!(capitals_inside_sentences("tại Thành phố Hồ Chí Minh").is_empty());
    assert!(capitals_inside_sentences("Lao động – Thương binh và Xã hội huyện").is_empty());
}

#[test]
fn no_kind_word_is_capitalised_inside_a_sentence_in_any_kind_of_commune() {
    let setup = Setup::load(&repo_root().join("loa.toml"), &Env::default())
        .unwrap_or_else(|p| panic!("{p}"));
    let data = SampleData::from_config(&setup.config);
    let mut problems = Vec::new();
    for kind in AreaKind::ALL {
        let data = SampleData {
            area: AreaVars::new("mau", "Thường Thắng", Some(kind)),
            ..data.clone()
        };
        let context = MessageContext::sample("Ngày Gia đình Việt Nam 28/6", &data);
        for (name, channel) in setup.templates.names() {
            // The template for staff's own words carries them as `{{text}}`.
            let text = match setup.templates.text_param_limit(name, channel) {
                Some(_) => setup.templates.render_with_text(
                    name,
                    channel,
                    &context,
                    "Mời bà con dự buổi sinh hoạt.",
                ),
                None => setup.templates.render(name, channel, &context),
            }
            .unwrap_or_else(|e| panic!("{name}.{channel}: {e}"));
            for found in capitals_inside_sentences(&text) {
                problems.push(format!("{name}.{channel} ({kind}): …{found}…"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Slogans belong to the schedules, by year; none is written into a template.
#[test]
fn no_template_carries_a_theme_of_its_own() {
    let setup = Setup::load(&repo_root().join("loa.toml"), &Env::default())
        .unwrap_or_else(|p| panic!("{p}"));
    let mut slogans: Vec<String> = setup
        .calendar
        .observances()
        .iter()
        .flat_map(|o| o.themes.values().cloned())
        .collect();
    // Slogans templates once carried, wrongly or for one year only.
    slogans.extend(
        [
            "Bình đẳng giới – Phát triển bền vững",
            "Gia đình bình yên – Xã hội hạnh phúc",
        ]
        .map(String::from),
    );
    assert!(slogans.len() > 5, "the shipped schedules carry themes");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("messages")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for slogan in &slogans {
            // Compared without case and dash style: "Gia đình hạnh phúc, quốc gia thịnh vượng".
            let plain = |s: &str| s.to_lowercase().replace([',', '–', '-'], "");
            if plain(&text).contains(&plain(slogan)) {
                found.push(format!("{}: {slogan}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
