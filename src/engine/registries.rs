//! One registry client per host, shared by all the work of a command, with
//! credentials from docker's config.json (and its credential helpers).

use crate::registry::auth::Credentials;
use crate::registry::{Client, RegistryError, RegistryOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
}

#[derive(Default)]
pub struct Registries {
    clients: Mutex<HashMap<String, Arc<Client>>>,
    /// Options given explicitly for a host (cfg.yaml); others use config.json.
    configured: HashMap<String, RegistryOptions>,
    timeouts: Timeouts,
}

impl Registries {
    pub fn new(configured: HashMap<String, RegistryOptions>, timeouts: Timeouts) -> Registries {
        Registries {
            clients: Mutex::new(HashMap::new()),
            configured,
            timeouts,
        }
    }

    pub fn client(&self, host: &str) -> Result<Arc<Client>, RegistryError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(host) {
            return Ok(c.clone());
        }
        let mut opts = self.configured.get(host).cloned().unwrap_or_default();
        if opts.credentials.is_none() {
            opts.credentials = docker_config_credentials(host);
        }
        opts.connect_timeout = opts.connect_timeout.or(self.timeouts.connect);
        opts.read_timeout = opts.read_timeout.or(self.timeouts.read);
        let client = Arc::new(Client::new(host, &opts)?);
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }
}

/// Credentials that `docker login` (or skopeo, or `ferry login`) stored for `host`.
/// Missing or unreadable config means anonymous access, as docker behaves.
pub fn docker_config_credentials(host: &str) -> Option<Credentials> {
    let keys: Vec<String> = if host == crate::reference::DOCKER_HUB {
        vec![
            crate::reference::DOCKER_HUB_LOGIN_KEY.into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            host.to_string(),
            format!("https://{host}"),
            format!("http://{host}"),
        ]
    };
    for key in keys {
        if let Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) =
            docker_credential::get_credential(&key)
        {
            return Some(Credentials { username, password });
        }
    }
    None
}
