//! OpenSSH `allowed_signers` files (ssh-keygen(1), "ALLOWED SIGNERS"): who may sign
//! a bundle. One line per key: `principals [options] keytype base64 [comment]`, with
//! the options `namespaces="..."`, `valid-after=...`, `valid-before=...` and
//! `cert-authority`. Read strictly: a line ferry cannot read is an error that names
//! it, so a typo never quietly trusts (or distrusts) anyone.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use ssh_key::public::KeyData;
use ssh_key::PublicKey;
use std::path::{Path, PathBuf};

/// One key of the file with what it is allowed to sign.
#[derive(Clone, Debug)]
pub struct AllowedSigner {
    /// The principals field as written (`alice@example.com,release@example.com`).
    pub principals: String,
    pub key: KeyData,
    /// `namespaces="..."`: a pattern list; none means every namespace.
    pub namespaces: Option<String>,
    pub valid_after: Option<DateTime<Utc>>,
    pub valid_before: Option<DateTime<Utc>>,
    /// `cert-authority`: the key signs certificates, not bundles; never matches here.
    pub cert_authority: bool,
    /// Line number in the file, for messages.
    pub line: usize,
}

/// A parsed allowed_signers file.
#[derive(Clone, Debug)]
pub struct AllowedSigners {
    pub path: PathBuf,
    pub entries: Vec<AllowedSigner>,
}

#[derive(Debug, thiserror::Error)]
pub enum AllowedError {
    #[error("{}", crate::tr!("cannot read the allowed signers file {}: {}", "无法读取可信签名者文件 {}: {}", .path.display(), crate::i18n::io_error(.source)))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", crate::tr!("{} line {}: {} (an OpenSSH allowed_signers line is `principals [options] keytype base64-key`)", "{} 第 {} 行: {} (OpenSSH allowed_signers 的行格式为 `principals [options] keytype base64-key`)", .path.display(), .line, .detail))]
    Line {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("{}", crate::tr!("the allowed signers file {} names no key: every bundle would be refused", "可信签名者文件 {} 中没有任何密钥: 所有镜像包都会被拒绝", .path.display()))]
    Empty { path: PathBuf },
}

/// Why an entry with the right key still does not vouch for a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Namespace { allowed: String },
    NotYetValid { after: String },
    Expired { before: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Namespace { allowed } => write!(
                f,
                "{}",
                crate::tr!(
                    "its line allows only the namespaces \"{allowed}\", not {}",
                    "其所在行只允许命名空间 \"{allowed}\", 不含 {}",
                    super::NAMESPACE
                )
            ),
            Refusal::NotYetValid { after } => write!(
                f,
                "{}",
                crate::tr!(
                    "its line makes it valid only after {after}",
                    "其所在行规定它在 {after} 之后才有效"
                )
            ),
            Refusal::Expired { before } => write!(
                f,
                "{}",
                crate::tr!(
                    "its line made it valid only before {before}",
                    "其所在行规定它只在 {before} 之前有效"
                )
            ),
        }
    }
}

impl AllowedSigners {
    pub fn load(path: &Path) -> Result<AllowedSigners, AllowedError> {
        let text = std::fs::read_to_string(path).map_err(|source| AllowedError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<AllowedSigners, AllowedError> {
        let mut entries = Vec::new();
        for (i, raw) in text.trim_start_matches('\u{feff}').lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = parse_line(line, i + 1).map_err(|detail| AllowedError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                detail,
            })?;
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(AllowedError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(AllowedSigners {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The entries for `key` that vouch for a signature in `namespace` at `now`;
    /// when none does, why the key's own entries did not (empty: the key is not
    /// in the file at all).
    pub fn vouch(
        &self,
        key: &KeyData,
        namespace: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<&AllowedSigner>, Vec<Refusal>> {
        let mut good = Vec::new();
        let mut refusals = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| !e.cert_authority && &e.key == key)
        {
            match e.check(namespace, now) {
                Ok(()) => good.push(e),
                Err(r) => refusals.push(r),
            }
        }
        if good.is_empty() {
            Err(refusals)
        } else {
            Ok(good)
        }
    }
}

impl AllowedSigner {
    fn check(&self, namespace: &str, now: DateTime<Utc>) -> Result<(), Refusal> {
        if let Some(ns) = &self.namespaces {
            if !match_pattern_list(namespace, ns) {
                return Err(Refusal::Namespace {
                    allowed: ns.clone(),
                });
            }
        }
        if let Some(after) = self.valid_after {
            if now < after {
                return Err(Refusal::NotYetValid {
                    after: after.to_rfc3339(),
                });
            }
        }
        if let Some(before) = self.valid_before {
            if now > before {
                return Err(Refusal::Expired {
                    before: before.to_rfc3339(),
                });
            }
        }
        Ok(())
    }
}

/// Splits off the first field of `s`: a run of non-blank characters in which double
/// quotes may protect blanks. Returns (field, rest).
fn next_field(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Some((&s[..i], &s[i..])),
            _ => {}
        }
    }
    Some((s, ""))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_line(line: &str, number: usize) -> Result<AllowedSigner, String> {
    let (principals, rest) = next_field(line)
        .ok_or_else(|| crate::tr!("no principals", "缺少 principals").to_string())?;
    let principals = unquote(principals).to_string();
    if principals.is_empty() {
        return Err(crate::tr!("empty principals", "principals 为空"));
    }
    // Options are there when what follows is not already a key.
    let (options, key_text) = match PublicKey::from_openssh(rest.trim()) {
        Ok(_) => ("", rest.trim()),
        Err(_) => {
            let (opts, rest) =
                next_field(rest).ok_or_else(|| crate::tr!("no key", "缺少密钥").to_string())?;
            (opts, rest.trim())
        }
    };
    let key = PublicKey::from_openssh(key_text).map_err(|e| {
        crate::tr!(
            "cannot read the key {:?}: {e}",
            "无法读取密钥 {:?}: {e}",
            key_text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        )
    })?;
    let mut entry = AllowedSigner {
        principals,
        key: key.key_data().clone(),
        namespaces: None,
        valid_after: None,
        valid_before: None,
        cert_authority: false,
        line: number,
    };
    for opt in split_options(options) {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(unquote(v))),
            None => (opt.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("cert-authority", None) => entry.cert_authority = true,
            ("namespaces", Some(v)) => entry.namespaces = Some(v.to_string()),
            ("valid-after", Some(v)) => entry.valid_after = Some(parse_time(v)?),
            ("valid-before", Some(v)) => entry.valid_before = Some(parse_time(v)?),
            _ => return Err(crate::tr!("unknown option {opt:?}", "未知的选项 {opt:?}")),
        }
    }
    Ok(entry)
}

/// Comma-separated options; commas inside double quotes belong to the value.
fn split_options(options: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in options.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&options[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&options[start..]);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

/// `YYYYMMDD` or `YYYYMMDDHHMM[SS]`, local time, or UTC with a trailing `Z`.
fn parse_time(v: &str) -> Result<DateTime<Utc>, String> {
    let bad = || {
        crate::tr!(
            "{v:?} is not a time like YYYYMMDD or YYYYMMDDHHMM[SS][Z]",
            "{v:?} 不是 YYYYMMDD 或 YYYYMMDDHHMM[SS][Z] 形式的时间"
        )
    };
    let (digits, utc) = match v.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (v, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let naive = match digits.len() {
        8 => NaiveDate::parse_from_str(digits, "%Y%m%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        12 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M").ok(),
        14 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok(),
        _ => None,
    }
    .ok_or_else(bad)?;
    if utc {
        return Ok(Utc.from_utc_datetime(&naive));
    }
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(bad)
}

/// ssh_config(5) PATTERNS: `*` and `?` wildcards over the whole string.
fn match_pattern(s: &[u8], p: &[u8]) -> bool {
    // Iterative glob with one backtrack point: linear in practice, no recursion.
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == s.get(si) => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// A comma-separated pattern list; a `!pattern` that matches refuses outright.
pub fn match_pattern_list(s: &str, list: &str) -> bool {
    let mut matched = false;
    for pat in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pat.strip_prefix('!') {
            Some(neg) if match_pattern(s.as_bytes(), neg.as_bytes()) => return false,
            Some(_) => {}
            None if match_pattern(s.as_bytes(), pat.as_bytes()) => matched = true,
            None => {}
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    #[test]
    fn reads_lines_with_and_without_options() {
        let text = format!(
            "# comment\n\nalice@example.com {ED} alice's laptop\n\
             \"bob@example.com,carol@example.com\" namespaces=\"git,ferry-*\",valid-after=20200101 {ED}\n\
             ca@example.com cert-authority {ED}\n"
        );
        let a = AllowedSigners::parse(&text, Path::new("a")).unwrap();
        assert_eq!(a.entries.len(), 3);
        assert_eq!(a.entries[0].principals, "alice@example.com");
        assert_eq!(a.entries[0].namespaces, None);
        assert_eq!(a.entries[1].principals, "bob@example.com,carol@example.com");
        assert_eq!(a.entries[1].namespaces.as_deref(), Some("git,ferry-*"));
        assert!(a.entries[1].valid_after.is_some());
        assert!(a.entries[2].cert_authority);
        assert_eq!(a.entries[2].line, 5);
        let key = a.entries[0].key.clone();
        let good = a.vouch(&key, "ferry-bundle", Utc::now()).unwrap();
        // The cert-authority line never vouches for a plain signature.
        assert_eq!(good.len(), 2);
    }

    #[test]
    fn options_restrict_what_a_key_may_sign() {
        let text = format!(
            "a@x namespaces=\"git\" {ED}\nb@x valid-before=20000101Z {ED}\nc@x valid-after=29990101Z {ED}\n"
        );
        let a = AllowedSigners::parse(&text, Path::new("a")).unwrap();
        let key = a.entries[0].key.clone();
        let why = a.vouch(&key, "ferry-bundle", Utc::now()).unwrap_err();
        assert_eq!(why.len(), 3);
        assert!(matches!(why[0], Refusal::Namespace { .. }));
        assert!(matches!(why[1], Refusal::Expired { .. }));
        assert!(matches!(why[2], Refusal::NotYetValid { .. }));
    }

    #[test]
    fn bad_lines_are_errors_that_name_the_line() {
        for text in [
            "alice@x\n",
            "alice@x ssh-ed25519 notbase64\n",
            &format!("alice@x bogus=1 {ED}\n"),
            &format!("alice@x valid-after=2020 {ED}\n"),
        ] {
            match AllowedSigners::parse(text, Path::new("f")) {
                Err(AllowedError::Line { line: 1, .. }) => {}
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(matches!(
            AllowedSigners::parse("# nothing\n", Path::new("f")),
            Err(AllowedError::Empty { .. })
        ));
    }

    #[test]
    fn patterns_follow_ssh_config() {
        assert!(match_pattern_list("ferry-bundle", "ferry-bundle"));
        assert!(match_pattern_list("ferry-bundle", "git,ferry-*"));
        assert!(match_pattern_list("ferry-bundle", "f?rry-bund*"));
        assert!(!match_pattern_list("ferry-bundle", "git,file"));
        assert!(!match_pattern_list("ferry-bundle", "*,!ferry-*"));
        assert!(match_pattern_list("a", "*"));
        assert!(!match_pattern_list("ab", "a"));
        assert!(!match_pattern_list("", "a*"));
    }
}
