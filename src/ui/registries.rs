//! The Registries screen: the `source:` and `target:` lists of cfg.yaml, shown
//! without their passwords, edited in place, and tested with one click (a `GET /v2/`
//! with the credentials, as `ferry login` checks them).
//!
//! Writing replaces only the `source:` and `target:` blocks of the file's text; every
//! other line (other keys, their comments) stays as it was, and the result must
//! parse with the same loader as the command line, with every other key unchanged,
//! before it replaces the file. Comments inside the two blocks are not kept.

use crate::config::{Config, RegistryEntry};
use crate::engine::registries::{Registries, Timeouts};
use crate::registry::RegistryOptions;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct RegistriesView {
    pub path: String,
    pub exists: bool,
    /// The file does not load: shown, and nothing is written until it is fixed.
    pub error: Option<String>,
    pub sources: Vec<EntryView>,
    pub targets: Vec<EntryView>,
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub index: usize,
    /// The name jobs use (`--src NAME`, `--dst NAME`).
    pub name: String,
    /// The `name:` written in the file, if any.
    pub name_set: Option<String>,
    pub registry: String,
    pub user: Option<String>,
    /// `none`, `set` (a password is stored; never sent), or `env` (`${VAR}`).
    pub password: &'static str,
    /// The variables the password refers to, for `env`.
    pub password_vars: Vec<String>,
    pub repository: Option<String>,
    pub insecure: bool,
    pub ca: Option<String>,
}

/// An entry as the page sends it. An empty password keeps the stored one.
#[derive(Debug, Deserialize)]
pub struct EntryForm {
    pub kind: String,
    /// The entry edited (its position in its list), none for a new one.
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(default)]
    pub name: String,
    pub registry: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub clear_password: bool,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub ca: String,
}

#[derive(Debug, Deserialize)]
pub struct EntryRef {
    pub kind: String,
    pub index: usize,
    /// The name the page showed, checked against the file (it may have changed).
    pub name: String,
}

fn env_vars(value: &str) -> Vec<String> {
    let mut vars = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        if !rest[..start].ends_with('$') {
            vars.push(after[..end].to_string());
        }
        rest = &after[end + 1..];
    }
    vars
}

fn load(path: &Path) -> Result<Option<Config>, String> {
    if !path.exists() {
        return Ok(None);
    }
    Config::load(path).map(Some).map_err(|e| e.to_string())
}

pub fn list(path: &Path) -> RegistriesView {
    let (cfg, error) = match load(path) {
        Ok(c) => (c, None),
        Err(e) => (None, Some(e)),
    };
    let view = |entries: &[RegistryEntry], named: &[crate::config::NamedRegistry]| {
        entries
            .iter()
            .zip(named)
            .enumerate()
            .map(|(index, (e, n))| {
                let password = e.password.as_deref().unwrap_or("");
                let vars = env_vars(password);
                EntryView {
                    index,
                    name: n.name.clone(),
                    name_set: e.name.clone().filter(|n| !n.is_empty()),
                    registry: e.registry.clone(),
                    user: e.user.clone().filter(|u| !u.is_empty()),
                    password: if password.is_empty() {
                        "none"
                    } else if vars.is_empty() {
                        "set"
                    } else {
                        "env"
                    },
                    password_vars: vars,
                    repository: e.repository.clone().filter(|r| !r.is_empty()),
                    insecure: e.insecure.unwrap_or(false),
                    ca: e.ca.as_ref().map(|c| c.display().to_string()),
                }
            })
            .collect()
    };
    RegistriesView {
        path: path.display().to_string(),
        exists: path.exists(),
        error,
        sources: cfg
            .as_ref()
            .map(|c| view(&c.file.source, &c.sources))
            .unwrap_or_default(),
        targets: cfg
            .as_ref()
            .map(|c| view(&c.file.target, &c.targets))
            .unwrap_or_default(),
    }
}

fn kind_key(kind: &str) -> Result<&'static str, String> {
    match kind {
        "source" => Ok("source"),
        "target" => Ok("target"),
        other => Err(crate::tr!(
            "{other:?} is neither source nor target",
            "{other:?} 既不是 source 也不是 target"
        )),
    }
}

/// A form as a cfg entry; the stored password is kept unless a new one is given.
fn entry_from(form: &EntryForm, old: Option<&RegistryEntry>) -> Result<RegistryEntry, String> {
    let registry = form.registry.trim();
    if registry.is_empty() {
        return Err(crate::i18n::t(
            "the registry address is required, e.g. https://registry.example.com:5000",
            "镜像仓库地址必填, 例如 https://registry.example.com:5000",
        )
        .into());
    }
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let password = if form.clear_password {
        None
    } else if !form.password.is_empty() {
        Some(form.password.clone())
    } else {
        old.and_then(|o| o.password.clone())
    };
    Ok(RegistryEntry {
        registry: registry.to_string(),
        user: text(&form.user),
        password: password.filter(|p| !p.is_empty()),
        name: text(&form.name),
        repository: text(&form.repository),
        insecure: form.insecure.then_some(true),
        ca: text(&form.ca).map(Into::into),
    })
}

/// A YAML double-quoted scalar (JSON's escapes are YAML's).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn block(key: &str, entries: &[RegistryEntry]) -> String {
    if entries.is_empty() {
        return format!("{key}: []\n");
    }
    let mut out = format!("{key}:\n");
    for e in entries {
        out.push_str(&format!("- registry: {}\n", quoted(&e.registry)));
        let mut field = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push_str(&format!("  {k}: {}\n", quoted(v)));
            }
        };
        field("name", &e.name);
        field("user", &e.user);
        field("password", &e.password);
        field("repository", &e.repository);
        field("ca", &e.ca.as_ref().map(|c| c.display().to_string()));
        if e.insecure == Some(true) {
            out.push_str("  insecure: true\n");
        }
    }
    out
}

/// `text` with the top-level block of `key` replaced by `new_block` (appended when
/// the key is not there). A block runs until the next line that starts another
/// top-level key; blank and comment lines just before that key stay with it.
fn replace_block(text: &str, key: &str, new_block: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let starts_key = |l: &str, k: &str| {
        l.strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let is_top_key = |l: &str| {
        l.chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && c != '-' && c != '#')
    };
    let Some(start) = lines.iter().position(|l| starts_key(l, key)) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(new_block);
        return out;
    };
    let mut end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| is_top_key(l))
        .map(|(i, _)| i)
        .unwrap_or(lines.len());
    while end > start + 1
        && lines
            .get(end - 1)
            .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        end -= 1;
    }
    let mut out: String = lines.iter().take(start).copied().collect();
    out.push_str(new_block);
    out.extend(lines.iter().skip(end).copied());
    out
}

/// The file's keys other than the registry lists, for the check that a write kept them.
fn other_keys(text: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = if text.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_saphyr::from_str(text).ok()?
    };
    if let Some(map) = v.as_object_mut() {
        map.remove("source");
        map.remove("target");
    }
    Some(v)
}

/// Applies `change` to the entries of `kind` and writes the file.
fn rewrite(
    path: &Path,
    kind: &str,
    change: impl FnOnce(&mut Vec<RegistryEntry>) -> Result<(), String>,
) -> Result<(), String> {
    let key = kind_key(kind)?;
    let old_text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(crate::tr!(
                "cannot read {}: {}",
                "无法读取 {}: {}",
                path.display(),
                crate::i18n::io_error(&e)
            ))
        }
    };
    let p = path.display().to_string();
    let cfg = Config::parse(&old_text, &p, &|v| std::env::var(v).ok()).map_err(|e| {
        crate::tr!(
            "{e} (fix the file first; nothing was written)",
            "{e} (请先修正该文件; 未写入任何内容)"
        )
    })?;
    let mut entries = if key == "source" {
        cfg.file.source
    } else {
        cfg.file.target
    };
    change(&mut entries)?;
    let new_text = replace_block(&old_text, key, &block(key, &entries));
    let checked = Config::parse(&new_text, &p, &|v| std::env::var(v).ok())
        .map_err(|e| crate::tr!("the new entry is not valid: {e}", "新条目无效: {e}"))?;
    let names: Vec<&str> = if key == "source" {
        checked.sources.iter().map(|r| r.name.as_str()).collect()
    } else {
        checked.targets.iter().map(|r| r.name.as_str()).collect()
    };
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names.iter().take(*i).any(|m| m == *n))
        .map(|(_, n)| n)
    {
        return Err(crate::tr!(
            "two registries would be named {dup:?}: give this one another name",
            "会有两个镜像仓库都叫 {dup:?}: 请给这个起另一个名字"
        ));
    }
    if other_keys(&old_text) != other_keys(&new_text) {
        return Err(crate::tr!(
            "writing {p} would change keys other than source and target; nothing was written",
            "写入 {p} 会改变 source 和 target 以外的键; 未写入任何内容"
        ));
    }
    write_atomically(path, &new_text).map_err(|e| {
        crate::tr!(
            "cannot write {p}: {}",
            "无法写入 {p}: {}",
            crate::i18n::io_error(&e)
        )
    })
}

/// Writes through a temporary file renamed over the old one, keeping its
/// permissions (a new file is readable by its owner only: it may hold passwords).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cfg.yaml".into());
    let tmp = dir.join(format!(".{name}.ferry-ui.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

pub fn save(path: &Path, form: &EntryForm) -> Result<(), String> {
    rewrite(path, &form.kind, |entries| match form.index {
        Some(i) => {
            let old = entries.get(i).cloned().ok_or_else(|| {
                crate::i18n::t(
                    "that entry is no longer in the file (reload the page)",
                    "文件中已没有该条目 (请刷新页面)",
                )
                .to_string()
            })?;
            let new = entry_from(form, Some(&old))?;
            if let Some(slot) = entries.get_mut(i) {
                *slot = new;
            }
            Ok(())
        }
        None => {
            entries.push(entry_from(form, None)?);
            Ok(())
        }
    })
}

pub fn delete(path: &Path, which: &EntryRef) -> Result<(), String> {
    let shown = list(path);
    let list = if which.kind == "source" {
        &shown.sources
    } else {
        &shown.targets
    };
    if list.get(which.index).map(|e| e.name.as_str()) != Some(which.name.as_str()) {
        return Err(crate::i18n::t(
            "the file changed since the page was loaded (reload the page)",
            "页面加载后文件已被修改 (请刷新页面)",
        )
        .into());
    }
    rewrite(path, &which.kind, |entries| {
        if which.index < entries.len() {
            entries.remove(which.index);
        }
        Ok(())
    })
}

/// Connects to the registry of `form` (with the stored password when none is
/// typed) and checks that it answers and accepts the credentials.
pub async fn test(path: &Path, form: &EntryForm) -> Result<String, String> {
    let key = kind_key(&form.kind)?;
    let old = match (form.index, load(path)?) {
        (Some(i), Some(cfg)) => {
            let list = if key == "source" {
                cfg.file.source
            } else {
                cfg.file.target
            };
            list.get(i).cloned()
        }
        _ => None,
    };
    let entry = entry_from(form, old.as_ref())?;
    // The same loader as the command line: scheme, ${VAR} expansion, CA file.
    let text = block("source", std::slice::from_ref(&entry));
    let p = path.display().to_string();
    let cfg = Config::parse(&text, &p, &|v| std::env::var(v).ok()).map_err(|e| e.to_string())?;
    let named = cfg.sources.first().ok_or_else(|| "no entry".to_string())?;
    let opts: RegistryOptions = named.options(&p).map_err(|e| e.to_string())?;
    let anonymous = opts.credentials.is_none();
    let host = named.host.clone();
    let registries = Registries::new(
        HashMap::from([(host.clone(), opts)]),
        Timeouts {
            connect: Some(Duration::from_secs(10)),
            read: Some(Duration::from_secs(20)),
            response: Some(Duration::from_secs(20)),
            min_rate: None,
        },
    );
    let client = registries.client(&host).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(40), client.ping()).await {
        Ok(Ok(())) if anonymous => Ok(crate::tr!(
            "{host} answers (no user given: anonymous, or a stored docker login)",
            "{host} 可以连接 (未填写用户: 匿名访问, 或使用已保存的 docker 登录)"
        )),
        Ok(Ok(())) => Ok(crate::tr!(
            "{host} answers and accepts the credentials",
            "{host} 可以连接, 凭据有效"
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(crate::tr!(
            "{host} did not answer within 40 seconds",
            "{host} 在 40 秒内没有响应"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# ferry cfg\nsource:\n- registry: http://a.example\n  user: u\n  password: ${PW}\n  name: a\n# the targets\ntarget: []\nmaxconn: 5 # five\nlang: zh_CN\n";

    fn form(index: Option<usize>, password: &str) -> EntryForm {
        EntryForm {
            kind: "source".into(),
            index,
            name: "a".into(),
            registry: "https://a.example:5000".into(),
            user: "u".into(),
            password: password.into(),
            clear_password: false,
            repository: String::new(),
            insecure: false,
            ca: String::new(),
        }
    }

    #[test]
    fn editing_keeps_other_keys_comments_and_the_stored_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg.yaml");
        std::fs::write(&path, FILE).unwrap();
        save(&path, &form(Some(0), "")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# ferry cfg\nsource:\n"), "{text}");
        assert!(text.contains("# the targets\ntarget: []\nmaxconn: 5 # five\nlang: zh_CN\n"));
        assert!(text.contains("\"${PW}\"") && text.contains("https://a.example:5000"));
        let shown = list(&path);
        assert_eq!(shown.sources[0].password, "env");
        assert_eq!(shown.sources[0].password_vars, ["PW"]);
        // A second entry with the same name is refused; a new password replaces.
        assert!(save(&path, &form(None, "x")).is_err());
        save(&path, &form(Some(0), "s3cret\"'")).unwrap();
        let shown = list(&path);
        assert_eq!(shown.sources[0].password, "set");
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.file.source[0].password.as_deref(), Some("s3cret\"'"));
        assert_eq!(cfg.file.maxconn, Some(5));
    }

    #[test]
    fn a_new_file_is_created_owner_only_and_a_broken_one_is_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg.yaml");
        let mut f = form(None, "pw");
        f.kind = "target".into();
        save(&path, &f).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(list(&path).targets[0].name, "a");
        std::fs::write(&path, "maxconns: 3\n").unwrap();
        assert!(save(&path, &form(None, "")).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "maxconns: 3\n");
        assert!(list(&path).error.is_some());
    }

    #[test]
    fn blocks_are_replaced_up_to_the_next_key() {
        let text = "a: 1\nsource:\n  - registry: x\n\n# about b\nb: 2\n";
        assert_eq!(
            replace_block(text, "source", "source: []\n"),
            "a: 1\nsource: []\n\n# about b\nb: 2\n"
        );
        assert_eq!(
            replace_block("a: 1", "target", "target: []\n"),
            "a: 1\ntarget: []\n"
        );
        // The check that a write kept the other keys compares real values.
        assert_eq!(
            other_keys(FILE),
            Some(serde_json::json!({"maxconn": 5, "lang": "zh_CN"}))
        );
        assert_ne!(other_keys(FILE), other_keys("maxconn: 6\nlang: zh_CN\n"));
    }
}
