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
    CHINESE.store(means_chinese(&value), Ordering::Relaxed);
}

fn means_chinese(lang: &str) -> bool {
    lang.to_ascii_lowercase().starts_with("zh")
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

/// `1 image`, `3 images`: a count with its English noun. Chinese messages write
/// their own measure word (`{n} 个镜像`) and need no plural.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether a text already has Chinese in it (then it is ferry's own, translated).
fn has_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// An OS error in the chosen language: the common kinds in Chinese, with the OS's
/// own words kept in parentheses so the original can still be looked up.
pub fn io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    if !is_chinese() {
        return e.to_string();
    }
    let what = match e.kind() {
        NotFound => "文件或目录不存在",
        PermissionDenied => "权限不足",
        AlreadyExists => "已存在",
        StorageFull => "磁盘空间不足",
        FileTooLarge => "文件过大 (文件系统不允许这么大的文件, 例如 FAT32 的 4 GiB 上限)",
        ReadOnlyFilesystem => "文件系统只读",
        InvalidFilename => "文件名无效或过长",
        IsADirectory => "是一个目录",
        NotADirectory => "不是目录",
        DirectoryNotEmpty => "目录不为空",
        CrossesDevices => "不能跨文件系统操作",
        ResourceBusy => "资源忙",
        UnexpectedEof => "数据意外结束",
        InvalidInput => "无效的输入",
        InvalidData => "数据无效",
        BrokenPipe => "管道已断开",
        Unsupported => "不支持的操作",
        OutOfMemory => "内存不足",
        ConnectionRefused => "连接被拒绝",
        ConnectionReset => "连接被重置",
        ConnectionAborted => "连接被中止",
        NotConnected => "未连接",
        HostUnreachable => "主机不可达",
        NetworkUnreachable => "网络不可达",
        NetworkDown => "网络已断开",
        TimedOut => "超时",
        AddrInUse => "地址已被占用",
        AddrNotAvailable => "地址不可用",
        Interrupted => "被中断",
        _ => "系统错误",
    };
    let original = e.to_string();
    if has_chinese(&original) {
        // A custom error whose text ferry already wrote in Chinese.
        return original;
    }
    format!("{what} ({original})")
}

/// The first line of a YAML parser's error, without its `error: ` prefix, with the
/// parser's common phrases in Chinese when Chinese is chosen (keys and values as
/// given; anything unknown stays, in parentheses).
pub fn yaml_error(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    let line = line.strip_prefix("error: ").unwrap_or(line).to_string();
    if !is_chinese() {
        // The parser's type names mean little to someone editing a cfg file.
        return line
            .replace("invalid u64", "not a whole number")
            .replace("invalid u32", "not a whole number")
            .replace("invalid usize", "not a whole number")
            .replace("invalid boolean", "not true or false");
    }
    // "line 3 column 5: ..." -> "第 3 行第 5 列: ..."
    let (position, mut text) = match line.strip_prefix("line ").and_then(|rest| {
        let (pos, tail) = rest.split_once(": ")?;
        let (l, c) = pos.split_once(" column ")?;
        Some((format!("第 {l} 行第 {c} 列: "), tail.to_string()))
    }) {
        Some((p, t)) => (p, t),
        None => (String::new(), line),
    };
    for (english, chinese) in [
        ("unknown field", "未知的键"),
        ("missing field", "缺少键"),
        ("duplicate field", "重复的键"),
        ("unknown variant", "未知的取值"),
        (", expected one of", ", 可用的有"),
        (", expected", ", 应为"),
        ("invalid type:", "类型错误:"),
        ("invalid value:", "值无效:"),
        ("invalid length", "长度无效"),
        ("expected sequence start", "此处应为列表"),
        ("expected mapping start", "此处应为映射 (键: 值)"),
        ("unclosed bracket", "括号未闭合"),
        ("unclosed quote", "引号未闭合"),
        ("invalid u64", "不是有效的非负整数"),
        ("invalid u32", "不是有效的非负整数"),
        ("invalid usize", "不是有效的非负整数"),
        ("invalid boolean", "不是有效的布尔值 (true 或 false)"),
    ] {
        text = text.replace(english, chinese);
    }
    if !has_chinese(&text) {
        text = format!("格式错误 ({text})");
    }
    format!("{position}{text}")
}

/// A message from a format string in each language, with the same arguments:
/// `tr!("cannot read {}", "无法读取 {}", path)` or `tr!("{n} failed", "{n} 个失败")`
/// (both strings take the same arguments). Only the chosen one is formatted.
#[macro_export]
macro_rules! tr {
    ($english:literal, $chinese:literal $(, $arg:expr)* $(,)?) => {
        if $crate::i18n::is_chinese() {
            format!($chinese $(, $arg)*)
        } else {
            format!($english $(, $arg)*)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // The language is process-wide, so these tests never switch it: other tests
    // running at the same time read it.
    #[test]
    fn lang_value_picks_the_language() {
        assert!(means_chinese("zh_CN.UTF-8"));
        assert!(means_chinese("ZH_tw"));
        assert!(!means_chinese("en_US"));
        assert!(!means_chinese(""));
    }

    #[test]
    fn plural_follows_the_count() {
        assert_eq!(plural(1, "blob", "blobs"), "1 blob");
        assert_eq!(plural(0, "blob", "blobs"), "0 blobs");
        assert_eq!(plural(2, "image", "images"), "2 images");
    }

    #[test]
    fn yaml_errors_lose_their_prefix() {
        assert_eq!(
            yaml_error("error: line 1 column 1: unknown field `x`\nmore"),
            "line 1 column 1: unknown field `x`"
        );
    }

    #[test]
    fn tr_formats_the_english_message_by_default() {
        let n = 3;
        assert_eq!(crate::tr!("{n} failed", "{n} 个失败"), "3 failed");
        assert_eq!(crate::tr!("{} failed", "{} 个失败", n + 1), "4 failed");
    }
}
