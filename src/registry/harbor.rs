//! Harbor: projects must exist before anything can be pushed into them. When the
//! target answers Harbor's API, upload creates the missing ones (private), as
//! hangar does.

use super::{basic_header, Client, RegistryError};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;

impl Client {
    fn harbor_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}/api/v2.0/{path}", self.base()))
            .timeout(self.limits.response_timeout);
        match &self.credentials {
            Some(c) => r.header(AUTHORIZATION, basic_header(c)),
            None => r,
        }
    }

    /// Whether the registry is a Harbor (its `systeminfo` names a Harbor version).
    pub async fn is_harbor(&self) -> bool {
        let Ok(resp) = self
            .harbor_request(reqwest::Method::GET, "systeminfo")
            .send()
            .await
        else {
            return false;
        };
        if !resp.status().is_success() {
            return false;
        }
        let Ok(body) = self.read_limited(resp, 64 * 1024, "systeminfo").await else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| v.get("harbor_version").is_some())
            .unwrap_or(false)
    }

    /// Creates each Harbor project that does not exist yet, private; returns the
    /// projects created.
    pub async fn harbor_ensure_projects(
        &self,
        projects: &[String],
    ) -> Result<Vec<String>, RegistryError> {
        let mut created = Vec::new();
        for p in projects {
            let what = crate::tr!(
                "Harbor project {p} on {}",
                "{} 上的 Harbor 项目 {p}",
                self.host
            );
            let exists = self
                .harbor_request(reqwest::Method::HEAD, &format!("projects?project_name={p}"))
                .send()
                .await
                .map_err(|e| RegistryError::transport(&what, e))?;
            if exists.status().is_success() {
                continue;
            }
            let body = serde_json::json!({ "project_name": p, "metadata": { "public": "false" } });
            let resp = self
                .harbor_request(reqwest::Method::POST, "projects")
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| RegistryError::transport(&what, e))?;
            match resp.status() {
                s if s.is_success() => created.push(p.clone()),
                StatusCode::CONFLICT => {}
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Denied {
                        what: crate::tr!("creating {what}", "创建 {what}"),
                        status: resp.status().as_u16(),
                    })
                }
                s => {
                    return Err(RegistryError::Status {
                        what: crate::tr!("creating {what}", "创建 {what}"),
                        status: s.as_u16(),
                        message: String::new(),
                        retry_after: None,
                    })
                }
            }
        }
        Ok(created)
    }
}
