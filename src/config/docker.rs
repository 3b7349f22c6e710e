//! docker's `config.json`: where `ferry login` stores credentials, so that docker,
//! skopeo and ferry share logins. Reading (with credential helpers) is done by the
//! `docker_credential` crate; this module writes.

use crate::reference::{is_docker_hub, DOCKER_HUB_LOGIN_KEY};
use base64::Engine as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    #[error(
        "{}",
        crate::i18n::t(
            "cannot find docker's config folder: set DOCKER_CONFIG or HOME",
            "找不到 docker 的配置目录: 请设置 DOCKER_CONFIG 或 HOME"
        )
    )]
    NoHome,
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    #[error("{}", crate::tr!("credential helper docker-credential-{} failed: {}", "凭据助手 docker-credential-{} 失败: {}", .helper, .detail))]
    Helper { helper: String, detail: String },
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path() -> Result<PathBuf, DockerConfigError> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
        .ok_or(DockerConfigError::NoHome)
}

/// A JSON syntax error, by its position: serde_json's own words are English.
fn json_error(e: &serde_json::Error) -> String {
    if crate::i18n::is_chinese() {
        format!("第 {} 行第 {} 列: 不是有效的 JSON", e.line(), e.column())
    } else {
        e.to_string()
    }
}

fn read() -> Result<(PathBuf, serde_json::Map<String, serde_json::Value>), DockerConfigError> {
    let path = config_path()?;
    let file_err = |detail: String| DockerConfigError::File {
        path: path.display().to_string(),
        detail,
    };
    let map = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => serde_json::Map::new(),
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| file_err(json_error(&e)))?
        {
            serde_json::Value::Object(m) => m,
            _ => return Err(file_err(crate::tr!("not a JSON object", "不是 JSON 对象"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(e) => return Err(file_err(crate::i18n::io_error(&e))),
    };
    Ok((path, map))
}

fn write(
    path: &PathBuf,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), DockerConfigError> {
    let file_err = |detail: String| DockerConfigError::File {
        path: path.display().to_string(),
        detail,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(crate::i18n::io_error(&e)))?;
    }
    let text = serde_json::to_string_pretty(map).map_err(|e| file_err(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| file_err(crate::i18n::io_error(&e)))?;
        f.write_all(text.as_bytes())
            .map_err(|e| file_err(crate::i18n::io_error(&e)))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| file_err(crate::i18n::io_error(&e)))
}

/// The credential helper docker would use for `registry`, if any.
fn helper_for(map: &serde_json::Map<String, serde_json::Value>, registry: &str) -> Option<String> {
    map.get("credHelpers")
        .and_then(|h| h.get(registry))
        .and_then(|v| v.as_str())
        .or_else(|| map.get("credsStore").and_then(|v| v.as_str()))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(helper: &str, verb: &str, input: &str) -> Result<(), DockerConfigError> {
    let err = |detail: String| DockerConfigError::Helper {
        helper: helper.into(),
        detail,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(crate::i18n::io_error(&e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| err(crate::i18n::io_error(&e)))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(crate::i18n::io_error(&e)))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// The `auths` key (and credential-helper server URL) under which docker itself
/// looks for `registry`.
fn docker_key(registry: &str) -> &str {
    if is_docker_hub(registry) {
        DOCKER_HUB_LOGIN_KEY
    } else {
        registry
    }
}

/// Stores credentials for `registry` (a credential helper when one is configured,
/// else `auths` in config.json). Returns where they went.
pub fn store(registry: &str, username: &str, password: &str) -> Result<String, DockerConfigError> {
    let (path, mut map) = read()?;
    let registry = docker_key(registry);
    if let Some(helper) = helper_for(&map, registry) {
        let input =
            serde_json::json!({"ServerURL": registry, "Username": username, "Secret": password})
                .to_string();
        run_helper(&helper, "store", &input)?;
        return Ok(crate::tr!(
            "credential helper docker-credential-{helper}",
            "凭据助手 docker-credential-{helper}"
        ));
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let auths = map
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !auths.is_object() {
        *auths = serde_json::Value::Object(Default::default());
    }
    if let Some(a) = auths.as_object_mut() {
        a.insert(registry.to_string(), serde_json::json!({ "auth": auth }));
    }
    write(&path, &map)?;
    Ok(path.display().to_string())
}

/// Removes stored credentials for `registry`; returns whether there were any.
pub fn erase(registry: &str) -> Result<bool, DockerConfigError> {
    let (path, mut map) = read()?;
    if let Some(helper) = helper_for(&map, docker_key(registry)) {
        run_helper(&helper, "erase", docker_key(registry))?;
        return Ok(true);
    }
    let hub = is_docker_hub(registry);
    let removed = map
        .get_mut("auths")
        .and_then(|a| a.as_object_mut())
        .map(|a| {
            let keys: Vec<String> = a
                .keys()
                .filter(|k| {
                    let host = k
                        .trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .trim_end_matches('/');
                    host == registry || hub && is_docker_hub(host)
                })
                .cloned()
                .collect();
            keys.iter().filter(|k| a.remove(*k).is_some()).count() > 0
        });
    if removed == Some(true) {
        write(&path, &map)?;
    }
    Ok(removed == Some(true))
}
