//! English or Chinese for the messages people read: picked by cfg `lang`, else by
//! `LC_ALL`/`LANG` (zh_* means Chinese), as image-transmit does. Each message is
//! written at its call site in both languages with [`t`], so nothing hides behind
//! lookup keys. Details that come from a registry or the OS stay as they were said.

use std::sync::atomic::{AtomicBool, Ordering};

static CHINESE: AtomicBool = AtomicBool::new(false);

/// Picks the language from a `lang` value (`zh_CN`, `en_US`...) or, when none is
/// given, from the environment.
pub fn init(lang: Option<&str>) {
    let value = match lang {
        Some(l) if !l.is_empty() => l.to_string(),
        _ => ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.is_empty())
            .unwrap_or_default(),
    };
    CHINESE.store(
        value.to_ascii_lowercase().starts_with("zh"),
        Ordering::Relaxed,
    );
}

pub fn is_chinese() -> bool {
    CHINESE.load(Ordering::Relaxed)
}

/// The message in the chosen language.
pub fn t<'a>(english: &'a str, chinese: &'a str) -> &'a str {
    if is_chinese() {
        chinese
    } else {
        english
    }
}

/// The message in the chosen language, for messages built with values.
pub fn pick(english: String, chinese: String) -> String {
    if is_chinese() {
        chinese
    } else {
        english
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lang_value_picks_the_language() {
        init(Some("zh_CN.UTF-8"));
        assert_eq!(t("failed", "失败"), "失败");
        init(Some("en_US"));
        assert_eq!(t("failed", "失败"), "failed");
    }
}
