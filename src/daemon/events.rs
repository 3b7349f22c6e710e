//! Registry push notifications, as the two senders ferry understands write them:
//!
//! * distribution (docker-registry, `notifications: endpoints:`): an envelope
//!   `{"events": [{"action": "push", "target": {"repository", "tag", "digest",
//!   "mediaType"}}]}` of media type `application/vnd.docker.distribution.events.v1+json`;
//!   blob pushes come as events too and are left out (only manifests move tags);
//! * Harbor webhooks: `{"type": "PUSH_ARTIFACT", "event_data": {"resources":
//!   [{"tag", "digest"}], "repository": {"repo_full_name"}}}` (Harbor 1's
//!   `pushImage` as well).
//!
//! Parsing only: what an event selects is decided by [`super::Selector`].

use crate::digest::Digest;
use serde::Deserialize;

/// One manifest pushed to a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{}", crate::tr!("not a registry notification: {}", "不是镜像仓库通知: {}", .0))]
    Unreadable(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Payload {
    Distribution { events: Vec<DistEvent> },
    Harbor(HarborEvent),
}

#[derive(Deserialize)]
struct DistEvent {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: Option<DistTarget>,
}

#[derive(Deserialize)]
struct DistTarget {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct HarborEvent {
    #[serde(rename = "type")]
    kind: String,
    event_data: HarborData,
}

#[derive(Deserialize)]
struct HarborData {
    #[serde(default)]
    resources: Vec<HarborResource>,
    repository: HarborRepository,
}

#[derive(Deserialize)]
struct HarborResource {
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct HarborRepository {
    #[serde(default)]
    repo_full_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// Manifest media types: a distribution event for anything else is a blob.
const MANIFEST_TYPES: &[&str] = &[
    crate::manifest::DOCKER_MANIFEST,
    crate::manifest::DOCKER_MANIFEST_LIST,
    crate::manifest::OCI_MANIFEST,
    crate::manifest::OCI_INDEX,
];

/// The pushes a notification body announces (other events, e.g. pulls or deletes,
/// give none).
pub fn parse(body: &[u8]) -> Result<Vec<Pushed>, EventError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| EventError::Unreadable(e.to_string()))?;
    let digest = |d: Option<String>| d.and_then(|d| d.parse::<Digest>().ok());
    let tag = |t: Option<String>| t.filter(|t| !t.is_empty());
    Ok(match payload {
        Payload::Distribution { events } => events
            .into_iter()
            .filter(|e| e.action == "push")
            .filter_map(|e| e.target)
            .filter(|t| t.tag.is_some() || MANIFEST_TYPES.contains(&t.media_type.as_str()))
            .filter(|t| !t.repository.is_empty())
            .map(|t| Pushed {
                repository: t.repository,
                tag: tag(t.tag),
                digest: digest(t.digest),
            })
            .collect(),
        Payload::Harbor(h) => {
            if !h.kind.eq_ignore_ascii_case("PUSH_ARTIFACT")
                && !h.kind.eq_ignore_ascii_case("pushImage")
            {
                return Ok(Vec::new());
            }
            let r = h.event_data.repository;
            let repository = match (r.repo_full_name, r.namespace, r.name) {
                (Some(full), _, _) if !full.is_empty() => full,
                (_, Some(ns), Some(name)) if !ns.is_empty() => format!("{ns}/{name}"),
                (_, _, Some(name)) => name,
                _ => return Ok(Vec::new()),
            };
            h.event_data
                .resources
                .into_iter()
                .map(|res| Pushed {
                    repository: repository.clone(),
                    tag: tag(res.tag),
                    digest: digest(res.digest),
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn distribution_envelope_gives_manifest_pushes_only() {
        let body = format!(
            r#"{{"events":[
              {{"id":"1","action":"push","target":{{"mediaType":"application/octet-stream","digest":"{D}","repository":"team/app"}}}},
              {{"id":"2","action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","repository":"team/app","tag":"1.2"}}}},
              {{"id":"3","action":"pull","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","repository":"team/app","tag":"1.2"}}}},
              {{"id":"4","action":"push","target":{{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"{D}","repository":"team/app"}}}}
            ]}}"#
        );
        let got = parse(body.as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].repository, "team/app");
        assert_eq!(got[0].tag.as_deref(), Some("1.2"));
        assert_eq!(got[0].digest.as_ref().map(|d| d.as_str()), Some(D));
        assert_eq!(got[1].tag, None);
    }

    #[test]
    fn harbor_webhook_gives_its_resources() {
        let body = format!(
            r#"{{"type":"PUSH_ARTIFACT","occur_at":1700000000,"operator":"admin",
               "event_data":{{"resources":[{{"digest":"{D}","tag":"v1","resource_url":"h.example/library/nginx:v1"}}],
               "repository":{{"name":"nginx","namespace":"library","repo_full_name":"library/nginx","repo_type":"public"}}}}}}"#
        );
        let got = parse(body.as_bytes()).unwrap();
        assert_eq!(
            got,
            vec![Pushed {
                repository: "library/nginx".into(),
                tag: Some("v1".into()),
                digest: D.parse().ok(),
            }]
        );
        let deleted = body.replace("PUSH_ARTIFACT", "DELETE_ARTIFACT");
        assert!(parse(deleted.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse(b"\x16\x03\x01").is_err());
        assert!(parse(b"{\"hello\": 1}").is_err());
    }
}
