//! `cfg.yaml`: image-transmit's batch-job configuration, read as it is, plus ferry's
//! own keys. Parsing is strict: an unknown key is an error that names it.

pub mod docker;
pub mod rewrite;
pub mod select;

use crate::registry::auth::Credentials;
use crate::registry::RegistryOptions;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", crate::tr!("cannot read {}: {}", "无法读取 {}: {}", .path, crate::i18n::io_error(.source)))]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("{}", crate::tr!("{}: {} refers to the environment variable {}, which is not set", "{}: {} 引用的环境变量 {} 未设置", .path, .what, .var))]
    MissingVar {
        path: String,
        what: String,
        var: String,
    },
    #[error("{}", crate::tr!("no {} registry named {:?} in {} (known: {})", "{2} 中没有名为 {1:?} 的{0}镜像仓库 (已有: {3})", registry_kind(.kind), .name, .path, .known))]
    UnknownName {
        kind: &'static str,
        name: String,
        path: String,
        known: String,
    },
}

/// `source` or `target`, in the chosen language.
fn registry_kind(kind: &str) -> &str {
    match kind {
        "source" => crate::i18n::t("source", "源"),
        "target" => crate::i18n::t("target", "目标"),
        other => other,
    }
}

/// One registry entry of `source:` or `target:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// `http://host[:port]` or `https://host[:port]` (a bare host follows the loopback rule).
    pub registry: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Targets: replace the path before the image name (`src/xxxx/image:tag` →
    /// `dst/yyyy/image:tag`).
    #[serde(default)]
    pub repository: Option<String>,
    /// ferry: skip TLS verification for this registry.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// ferry: a PEM CA file to trust for this registry.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheEntry {
    #[serde(default)]
    pub pathname: Option<String>,
    #[serde(default)]
    pub keepdays: Option<u64>,
    #[serde(default)]
    pub keepsize: Option<u64>,
}

/// ferry: where to report the end of a job.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyEntry {
    /// POST a JSON summary here.
    #[serde(default)]
    pub webhook: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkEntry {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
}

/// The file as written. Every image-transmit key is accepted; keys that belong to
/// features ferry does not have yet are reported by [`Config::unsupported`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub source: Vec<RegistryEntry>,
    #[serde(default)]
    pub target: Vec<RegistryEntry>,
    /// `os/arch[/variant]`, several separated by commas.
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub maxconn: Option<usize>,
    #[serde(default)]
    pub retries: Option<usize>,
    #[serde(default)]
    pub singlefile: Option<bool>,
    #[serde(default)]
    pub compressor: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub outprefix: Option<String>,
    #[serde(default)]
    pub interval: Option<u64>,
    #[serde(default)]
    pub cache: Option<CacheEntry>,
    #[serde(default)]
    pub dingtalk: Option<Vec<DingTalkEntry>>,
    /// image-transmit: docker-load compatible output.
    #[serde(default)]
    pub dockerfile: Option<bool>,
    /// image-transmit: keep its temporary folder.
    #[serde(default)]
    pub keeptemp: Option<bool>,
    /// image-transmit: squashfs options.
    #[serde(default)]
    pub squashfs: Option<String>,
    /// ferry: the largest data file, e.g. `4G` (FAT32 cannot hold 4 GiB).
    #[serde(default)]
    pub maxfilesize: Option<String>,
    /// ferry: number of data files.
    #[serde(default)]
    pub files: Option<usize>,
    /// ferry: also carry signatures, attestations and SBOMs (`--with-referrers`).
    #[serde(default)]
    pub referrers: Option<bool>,
    /// ferry: notifications (a JSON webhook).
    #[serde(default)]
    pub notify: Option<NotifyEntry>,
    /// ferry: sign every bundle saved (`--sign`), and `ferry sign`'s default key.
    #[serde(default)]
    pub sign: Option<SignEntry>,
    /// ferry: an OpenSSH allowed_signers file; bundles must be signed by one of its
    /// keys (`--trust`).
    #[serde(default)]
    pub trust: Option<PathBuf>,
    /// ferry: the image list of `save` and `sync` when none is given on the command
    /// line or standard input: list lines, tag selectors included.
    #[serde(default)]
    pub images: Option<Vec<String>>,
}

/// ferry: the key that signs bundles.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignEntry {
    /// An OpenSSH private key file.
    pub key: PathBuf,
    /// The environment variable that holds an encrypted key's passphrase.
    #[serde(default)]
    pub passphrase_env: Option<String>,
}

/// A registry of the cfg file, resolved: name, host, and how to reach it.
#[derive(Clone, Debug)]
pub struct NamedRegistry {
    pub name: String,
    pub host: String,
    pub repository: Option<String>,
    /// How to reach it, without credentials (see [`NamedRegistry::options`]).
    pub options: RegistryOptions,
    /// Credentials, or the `${VAR}` that was not set: an error only when this
    /// registry is used, so one cfg file can serve both sides of the air gap.
    credentials: Result<Option<Credentials>, (String, String)>,
}

impl NamedRegistry {
    /// Connection options with the credentials resolved.
    pub fn options(&self, path: &str) -> Result<RegistryOptions, ConfigError> {
        match &self.credentials {
            Ok(c) => Ok(RegistryOptions {
                credentials: c.clone(),
                ..self.options.clone()
            }),
            Err((what, var)) => Err(ConfigError::MissingVar {
                path: path.into(),
                what: what.clone(),
                var: var.clone(),
            }),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Config {
    pub path: String,
    pub file: FileConfig,
    pub sources: Vec<NamedRegistry>,
    pub targets: Vec<NamedRegistry>,
}

/// Where ferry looks for a cfg file when none is given: `./cfg.yaml`, then
/// `./data/cfg.yaml`, as image-transmit does.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    ["cfg.yaml", "data/cfg.yaml"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: p.clone(),
            source: e,
        })?;
        Self::parse(&text, &p, &|v| std::env::var(v).ok())
    }

    pub fn parse(
        text: &str,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Invalid {
                path: path.into(),
                detail: crate::i18n::yaml_error(&with_key(&e.to_string(), text)),
            })?
        };
        let resolve =
            |entries: &[RegistryEntry], kind: &str| -> Result<Vec<NamedRegistry>, ConfigError> {
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| resolve_entry(e, &format!("{kind}[{i}]"), path, env))
                    .collect()
            };
        let sources = resolve(&file.source, "source")?;
        let targets = resolve(&file.target, "target")?;
        let cfg = Config {
            path: path.into(),
            file,
            sources,
            targets,
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: self.path.clone(),
            detail,
        };
        if self.file.maxconn == Some(0) {
            return Err(invalid(crate::tr!(
                "maxconn must be at least 1",
                "maxconn 至少为 1"
            )));
        }
        if let Some(c) = &self.file.compressor {
            if !matches!(c.as_str(), "tar" | "zstd" | "") {
                return Err(invalid(crate::tr!("compressor {c:?} is not supported: use tar or zstd (squashfs bundles are out of ferry's scope)", "不支持 compressor {c:?}: 请使用 tar 或 zstd (ferry 不处理 squashfs 镜像包)")));
            }
        }
        if let Some(p) = &self.file.platform {
            crate::engine::platform::PlatformFilter::parse(p).map_err(invalid)?;
        }
        if let Some(s) = &self.file.maxfilesize {
            parse_size(s).map_err(invalid)?;
        }
        Ok(())
    }

    /// Keys that were set but whose feature ferry does not have yet, to be reported.
    pub fn unsupported(&self) -> Vec<&'static str> {
        let f = &self.file;
        let mut out = Vec::new();
        if f.dockerfile == Some(true) {
            out.push("dockerfile");
        }
        // The harmless values (`keeptemp: false`, an empty or `false` squashfs) ask
        // for nothing ferry lacks: image-transmit's own files carry them.
        if f.keeptemp == Some(true) {
            out.push("keeptemp");
        }
        if f.squashfs.as_deref().is_some_and(|s| {
            !matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "" | "false" | "no" | "off" | "0" | "none"
            )
        }) {
            out.push("squashfs");
        }
        out
    }

    pub fn source(&self, name: Option<&str>) -> Result<Option<&NamedRegistry>, ConfigError> {
        pick(&self.sources, name, "source", &self.path)
    }

    pub fn target(&self, name: Option<&str>) -> Result<Option<&NamedRegistry>, ConfigError> {
        pick(&self.targets, name, "target", &self.path)
    }

    /// Connection options by host for every registry the file names.
    /// Connection options by host. The registries this run uses come first and win
    /// for their host (another entry for the same host may carry other credentials);
    /// other entries fill in, skipped when their credentials cannot be resolved.
    pub fn registry_options(
        &self,
        used: &[&NamedRegistry],
    ) -> Result<HashMap<String, RegistryOptions>, ConfigError> {
        let mut map = HashMap::new();
        for r in used {
            map.insert(r.host.clone(), r.options(&self.path)?);
        }
        for r in self.sources.iter().chain(&self.targets) {
            if !map.contains_key(&r.host) {
                if let Ok(o) = r.options(&self.path) {
                    map.insert(r.host.clone(), o);
                }
            }
        }
        Ok(map)
    }

    /// Applies `-opt key=value,...` overrides for one run.
    pub fn apply_overrides(&mut self, spec: &str) -> Result<(), ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: "-opt".into(),
            detail,
        };
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                invalid(crate::tr!(
                    "{pair:?} is not key=value",
                    "{pair:?} 不是 key=value 形式"
                ))
            })?;
            let num = |v: &str| {
                v.parse::<u64>().map_err(|_| {
                    invalid(crate::tr!(
                        "{k}: {v:?} is not a number",
                        "{k}: {v:?} 不是数字"
                    ))
                })
            };
            let boolean = |v: &str| {
                v.parse::<bool>().map_err(|_| {
                    invalid(crate::tr!(
                        "{k}: {v:?} is not true or false",
                        "{k}: {v:?} 不是 true 或 false"
                    ))
                })
            };
            match k.trim() {
                "maxconn" => self.file.maxconn = Some(num(v)? as usize),
                "retries" => self.file.retries = Some(num(v)? as usize),
                "singlefile" => self.file.singlefile = Some(boolean(v)?),
                "compressor" => self.file.compressor = Some(v.to_string()),
                "lang" => self.file.lang = Some(v.to_string()),
                "outprefix" => self.file.outprefix = Some(v.to_string()),
                "interval" => self.file.interval = Some(num(v)?),
                "platform" => self.file.platform = Some(v.to_string()),
                "maxfilesize" => self.file.maxfilesize = Some(v.to_string()),
                "files" => self.file.files = Some(num(v)? as usize),
                other => return Err(invalid(crate::tr!("unknown key {other:?} (known: maxconn, retries, singlefile, compressor, lang, outprefix, interval, platform, maxfilesize, files)", "未知的键 {other:?} (可用: maxconn, retries, singlefile, compressor, lang, outprefix, interval, platform, maxfilesize, files)"))),
            }
        }
        self.check()
    }
}

/// A YAML error with the key it is about: the parser says `line 2 column 10:
/// invalid u64` for `maxconn: eight`, naming the line but not the key.
fn with_key(message: &str, text: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let Some((position, rest)) = first.split_once(": ") else {
        return message.to_string();
    };
    let line = position
        .strip_prefix("line ")
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    match line.and_then(|n| key_path_at(text, n)) {
        Some(key) if !rest.contains(key.rsplit('.').next().unwrap_or(&key)) => {
            format!("{position}: {key}: {rest}")
        }
        _ => message.to_string(),
    }
}

/// The key on line `n` (1-based) with its parents, e.g. `cache.keepdays`: the
/// `key:` that starts the line, then each less indented `key:` above it.
fn key_path_at(text: &str, n: usize) -> Option<String> {
    /// (indentation, key) of a `key: ...` line; a list item's `- ` counts as indentation.
    fn key_of(line: &str) -> Option<(usize, &str)> {
        let body = line.trim_start();
        let mut indent = line.len() - body.len();
        let body = match body.strip_prefix("- ") {
            Some(b) => {
                indent += 2;
                b.trim_start()
            }
            None => body,
        };
        let (key, _) = body.split_once(':')?;
        let key = key.trim().trim_matches(['"', '\'']);
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        plain.then_some((indent, key))
    }
    let lines: Vec<&str> = text.lines().collect();
    let index = n.checked_sub(1)?;
    let (mut indent, key) = key_of(lines.get(index)?)?;
    let mut path = vec![key];
    for line in lines.get(..index)?.iter().rev() {
        if indent == 0 {
            break;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let body = line.trim_start();
        let line_indent = line.len() - body.len();
        if line_indent < indent {
            if let Some((i, k)) = key_of(line) {
                if i < indent {
                    path.push(k);
                    indent = line_indent;
                }
            }
        }
    }
    path.reverse();
    Some(path.join("."))
}

fn pick<'a>(
    list: &'a [NamedRegistry],
    name: Option<&str>,
    kind: &'static str,
    path: &str,
) -> Result<Option<&'a NamedRegistry>, ConfigError> {
    match name {
        None => Ok(list.first()),
        Some(n) => {
            list.iter()
                .find(|r| r.name == n)
                .map(Some)
                .ok_or_else(|| ConfigError::UnknownName {
                    kind,
                    name: n.to_string(),
                    path: path.to_string(),
                    known: if list.is_empty() {
                        crate::i18n::t("none", "无").into()
                    } else {
                        list.iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                })
        }
    }
}

fn resolve_entry(
    e: &RegistryEntry,
    what: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NamedRegistry, ConfigError> {
    let invalid = |detail: String| ConfigError::Invalid {
        path: path.into(),
        detail: format!("{what}: {detail}"),
    };
    let (plain_http, rest) = if let Some(r) = e.registry.strip_prefix("http://") {
        (Some(true), r)
    } else if let Some(r) = e.registry.strip_prefix("https://") {
        (Some(false), r)
    } else {
        (None, e.registry.as_str())
    };
    let host = rest.trim_end_matches('/').to_string();
    if host.is_empty() || host.contains('/') {
        return Err(invalid(crate::tr!(
            "registry {:?} must be http(s)://HOST[:PORT]",
            "registry {:?} 必须是 http(s)://HOST[:PORT] 形式",
            e.registry
        )));
    }
    let repository = e
        .repository
        .as_ref()
        .map(|r| r.trim_matches('/').to_string())
        .filter(|r| !r.is_empty());
    let expand =
        |value: &Option<String>, field: &str| -> Result<Option<String>, (String, String)> {
            match value.as_deref() {
                None => Ok(None),
                Some(v) => match expand_env(v, &format!("{what}.{field}"), path, env) {
                    Ok(x) => Ok(Some(x)),
                    Err(ConfigError::MissingVar { what, var, .. }) => Err((what, var)),
                    Err(_) => Ok(None),
                },
            }
        };
    let credentials = (|| {
        let user = expand(&e.user, "user")?.filter(|u| !u.is_empty());
        let password = expand(&e.password, "password")?;
        Ok(user.map(|username| Credentials {
            username,
            password: password.unwrap_or_default(),
        }))
    })();
    let name = e
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| match &repository {
            Some(r) => format!("{host}-{r}"),
            None => host.clone(),
        });
    Ok(NamedRegistry {
        name,
        host,
        repository,
        options: RegistryOptions {
            insecure: e.insecure.unwrap_or(false),
            ca_file: e.ca.clone(),
            plain_http,
            ..RegistryOptions::default()
        },
        credentials,
    })
}

/// Replaces `${VAR}` with the variable's value, so cfg files can be committed
/// without their passwords. The error names the variable, never a value.
fn expand_env(
    value: &str,
    what: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        // `$${` is a literal `${` (a password may contain one).
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let var = &after[..end];
        let val = env(var).ok_or_else(|| ConfigError::MissingVar {
            path: path.into(),
            what: what.into(),
            var: var.into(),
        })?;
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses sizes like `4G`, `700M`, `1.5GiB`, `1048576` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        crate::tr!(
            "size {s:?} is not a number with an optional unit (K, M, G, T)",
            "大小 {s:?} 应为数字加可选单位 (K, M, G, T)"
        )
    })?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => {
            return Err(crate::tr!(
                "size {s:?} has an unknown unit (use K, M, G or T)",
                "大小 {s:?} 的单位未知 (请使用 K, M, G 或 T)"
            ))
        }
    };
    let v = (n * mult as f64) as u64;
    if v < 64 * 1024 {
        return Err(crate::tr!(
            "size {s:?} is too small for a data file (at least 64K)",
            "大小 {s:?} 对数据文件来说太小 (至少 64K)"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        (v == "SRC_PW").then(|| "s3cret".to_string())
    }

    const SAMPLE: &str = r#"
source: # comment
- registry: "http://10.45.80.1"
  user:
  password:
- registry: "https://src.example.com:5000"
  user: robot
  password: "${SRC_PW}"
  name: nj
target:
- registry: "http://10.45.46.109"
  user:
  password:
  repository: yyyy
maxconn: 5
retries: 2
singlefile: false
outprefix: team
platform: linux/amd64
"#;

    #[test]
    fn a_doubled_dollar_keeps_a_literal_brace() {
        let env = |v: &str| (v == "X").then(|| "x".to_string());
        assert_eq!(
            expand_env("a$${X}b${X}", "w", "p", &env).unwrap(),
            "a${X}bx"
        );
    }

    #[test]
    fn reads_image_transmit_files() {
        let cfg = Config::parse(SAMPLE, "cfg.yaml", &env).unwrap();
        assert_eq!(cfg.sources[0].name, "10.45.80.1");
        assert_eq!(cfg.sources[0].options.plain_http, Some(true));
        assert!(cfg.sources[0].options("c").unwrap().credentials.is_none());
        let nj = cfg.source(Some("nj")).unwrap().unwrap();
        assert_eq!(nj.host, "src.example.com:5000");
        assert_eq!(
            nj.options("c").unwrap().credentials.unwrap().password,
            "s3cret"
        );
        assert_eq!(cfg.target(None).unwrap().unwrap().name, "10.45.46.109-yyyy");
        assert_eq!(cfg.file.maxconn, Some(5));
        assert!(cfg.unsupported().is_empty());
    }

    #[test]
    fn unknown_keys_wrong_types_and_names_are_errors() {
        let e = Config::parse("source: []\nmaxconns: 3\n", "cfg.yaml", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("maxconns"), "{e}");
        let e = Config::parse("maxconn: lots\n", "cfg.yaml", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cfg.yaml"), "{e}");
        let cfg = Config::parse(SAMPLE, "cfg.yaml", &env).unwrap();
        let e = cfg.source(Some("gz")).unwrap_err().to_string();
        assert!(e.contains("gz") && e.contains("nj"), "{e}");
        // A missing variable matters only for a registry that is used.
        let cfg = Config::parse(
            "source:\n- registry: http://h\n  user: u\n  password: ${NOPE}\n",
            "c",
            &env,
        )
        .unwrap();
        let e = cfg
            .registry_options(&[&cfg.sources[0]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("NOPE"), "{e}");
        assert!(
            cfg.registry_options(&[]).unwrap().is_empty(),
            "an unused entry with a missing variable is left out"
        );
    }

    #[test]
    fn later_keys_are_reported_and_overrides_apply() {
        let mut cfg =
            Config::parse("interval: 60\ncache:\n  pathname: cache\n", "c", &env).unwrap();
        assert_eq!(cfg.unsupported(), Vec::<&str>::new());
        cfg.apply_overrides("maxconn=3,singlefile=true").unwrap();
        assert_eq!(cfg.file.maxconn, Some(3));
        assert_eq!(cfg.file.singlefile, Some(true));
        assert!(cfg.apply_overrides("bogus=1").is_err());
    }

    #[test]
    fn a_bad_value_names_its_key_and_line() {
        let e = Config::parse("source: []\nmaxconn: eight\n", "cfg.yaml", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("maxconn"), "{e}");
        let text = "source:\n- registry: http://h\n  insecure: maybe\ncache:\n  keepdays: many\n";
        let e = Config::parse(text, "c", &env).unwrap_err().to_string();
        assert!(e.contains("source.insecure"), "{e}");
        assert_eq!(key_path_at(text, 5).as_deref(), Some("cache.keepdays"));
        assert_eq!(key_path_at(text, 2).as_deref(), Some("source.registry"));
        assert_eq!(key_path_at(text, 99), None);
        assert_eq!(key_path_at(text, 0), None);
    }

    #[test]
    fn unsupported_keys_with_harmless_values_are_not_reported() {
        let cfg = Config::parse("keeptemp: false\nsquashfs: false\n", "c", &env).unwrap();
        assert!(cfg.unsupported().is_empty(), "{:?}", cfg.unsupported());
        let cfg = Config::parse("keeptemp: true\nsquashfs: \"-comp xz\"\n", "c", &env).unwrap();
        assert_eq!(cfg.unsupported(), vec!["keeptemp", "squashfs"]);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("700MiB").unwrap(), 700 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("10").is_err());
    }
}
