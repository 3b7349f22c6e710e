//! One registry client per host, shared by all the work of a command, with
//! credentials from cfg.yaml or else the stored logins (containers-auth.json and
//! docker's config.json, credential helpers included).

use crate::registry::{Client, RegistryError, RegistryOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Time bounds given on the command line (see [`crate::registry::limits`]).
#[derive(Clone, Debug, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
    /// Overall deadline of a small response.
    pub response: Option<Duration>,
    /// Minimum average speed of a blob body, bytes/s (0: none).
    pub min_rate: Option<u64>,
}

#[derive(Default)]
pub struct Registries {
    clients: Mutex<HashMap<String, Arc<Client>>>,
    /// Options given explicitly for a host (cfg.yaml); others use stored logins.
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
        let configured = self.configured.get(host);
        let mut opts = configured.cloned().unwrap_or_default();
        if opts.credentials.is_some() {
            opts.credentials_from = opts
                .credentials_from
                .or_else(|| Some("cfg.yaml".to_string()));
        } else if let Some((c, file)) = crate::config::docker::stored_credentials(host) {
            opts.credentials = Some(c);
            opts.credentials_from = Some(file.display().to_string());
        }
        opts.connect_timeout = opts.connect_timeout.or(self.timeouts.connect);
        opts.read_timeout = opts.read_timeout.or(self.timeouts.read);
        opts.response_timeout = opts.response_timeout.or(self.timeouts.response);
        opts.min_rate = opts.min_rate.or(self.timeouts.min_rate);
        let client = Arc::new(Client::new(host, &opts)?);
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }
}
