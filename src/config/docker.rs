//! Stored logins. Reading follows containers-auth.json(5), as skopeo and podman do:
//! `$REGISTRY_AUTH_FILE` (else `$XDG_RUNTIME_DIR/containers/auth.json`), then
//! `$XDG_CONFIG_HOME/containers/auth.json` (else `~/.config/containers/auth.json`),
//! then docker's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`); the first file
//! with credentials for the registry wins, credential helpers included (parsed by
//! the `docker_credential` crate). Writing (`ferry login`) goes to docker's
//! `config.json`, so that docker, skopeo and ferry share logins; `ferry logout`
//! removes the registry from every one of those files.

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

/// The files searched for stored credentials, in containers-auth.json(5)'s order.
pub fn auth_files() -> Vec<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    if let Some(f) = var("REGISTRY_AUTH_FILE") {
        files.push(f);
    } else if let Some(run) = var("XDG_RUNTIME_DIR") {
        files.push(run.join("containers").join("auth.json"));
    }
    if let Some(conf) = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config"))) {
        files.push(conf.join("containers").join("auth.json"));
    }
    if let Ok(docker) = config_path() {
        files.push(docker);
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    files
}

/// The keys a login for `host` may be stored under: docker writes Docker Hub as
/// `https://index.docker.io/v1/`, skopeo as `docker.io`; other registries as the
/// bare host, sometimes with a scheme.
fn lookup_keys(host: &str) -> Vec<String> {
    if is_docker_hub(host) {
        vec![
            DOCKER_HUB_LOGIN_KEY.into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            host.to_string(),
            format!("https://{host}"),
            format!("http://{host}"),
        ]
    }
}

/// Credentials stored for `host` by `docker login`, `skopeo login`, `podman login`
/// or `ferry login`, and the file they came from. Missing or unreadable files mean
/// no stored login, as docker and skopeo behave. Identity tokens are not used.
pub fn stored_credentials(host: &str) -> Option<(crate::registry::auth::Credentials, PathBuf)> {
    let keys = lookup_keys(host);
    for file in auth_files() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for key in &keys {
            if let Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) =
                docker_credential::get_credential_from_reader(bytes.as_slice(), key)
            {
                return Some((
                    crate::registry::auth::Credentials { username, password },
                    file,
                ));
            }
        }
    }
    None
}

/// A file read before docker's config.json that holds a login for `host` (a
/// skopeo or podman auth.json): it wins over what `ferry login` stores there.
pub fn shadowing_login(host: &str) -> Option<PathBuf> {
    let (_, file) = stored_credentials(host)?;
    (config_path().ok().as_ref() != Some(&file)).then_some(file)
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
    read_file(config_path()?)
}

/// A docker config.json or containers auth.json as a JSON object (empty when the
/// file is missing or blank).
fn read_file(
    path: PathBuf,
) -> Result<(PathBuf, serde_json::Map<String, serde_json::Value>), DockerConfigError> {
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
    let (tmp, mut f) = create_temp(path).map_err(|e| file_err(crate::i18n::io_error(&e)))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(crate::i18n::io_error(&e)));
    }
    Ok(())
}

/// A new temporary file beside `path`, mode 0600, under a name nobody else has:
/// created with O_CREAT|O_EXCL, which never follows a symlink and never opens an
/// existing file, so a file or symlink planted there is never written through
/// (another name is tried instead).
fn create_temp(path: &std::path::Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".into());
    let mut last = None;
    for attempt in 0..64u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(
            ".{name}.{}.{nanos:08x}{attempt}.tmp",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
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

/// Removes stored credentials for `registry` wherever ferry reads them: docker's
/// config.json (or its credential helper) and every containers auth.json of
/// [`auth_files`] (skopeo's and podman's logins), so that no older login takes
/// over after a logout. Returns where they were removed from (empty: nowhere).
pub fn erase(registry: &str) -> Result<Vec<String>, DockerConfigError> {
    let mut removed = Vec::new();
    let (docker, mut map) = read()?;
    if let Some(helper) = helper_for(&map, docker_key(registry)) {
        run_helper(&helper, "erase", docker_key(registry))?;
        removed.push(crate::tr!(
            "credential helper docker-credential-{helper}",
            "凭据助手 docker-credential-{helper}"
        ));
    } else if remove_auths(&mut map, registry) {
        write(&docker, &map)?;
        removed.push(docker.display().to_string());
    }
    for file in auth_files() {
        if file == docker || !file.is_file() {
            continue;
        }
        let (path, mut map) = read_file(file)?;
        if remove_auths(&mut map, registry) {
            write(&path, &map)?;
            removed.push(path.display().to_string());
        }
    }
    Ok(removed)
}

/// Drops every `auths` entry of `map` for `registry` (with or without a scheme or
/// trailing slash; any of Docker Hub's keys for Docker Hub); whether there was one.
fn remove_auths(map: &mut serde_json::Map<String, serde_json::Value>, registry: &str) -> bool {
    let hub = is_docker_hub(registry);
    let Some(auths) = map.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return false;
    };
    let keys: Vec<String> = auths
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
    keys.iter().filter(|k| auths.remove(*k).is_some()).count() > 0
}
