//! `ferry upload META --dst docker`: loads the bundle's images into a local docker
//! daemon by streaming a `docker load` archive to its API socket (as image-transmit's
//! `-dst=docker` does), where a socket is there.

use super::export::{export_docker_archive, select, RemovedOnDrop};
use super::platform::PlatformFilter;
use crate::bundle::meta::Image;
use crate::bundle::reader::{BlobLocation, Bundle};
use crate::digest::Digest;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The daemon's socket: `DOCKER_HOST=unix://PATH`, else /var/run/docker.sock.
pub fn socket_path() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// Writes the archive next to the bundle, streams it to `POST /images/load`, and
/// returns what the daemon said it loaded.
pub async fn load(
    bundle: &Bundle,
    wanted: &[String],
    index: &HashMap<Digest, BlobLocation>,
    platform: &PlatformFilter,
    socket: &Path,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<String> {
    if !socket.exists() {
        bail!(crate::tr!(
            "no docker daemon socket at {} (set DOCKER_HOST=unix://PATH)",
            "{} 处没有 docker 守护进程的套接字 (请设置 DOCKER_HOST=unix://PATH)",
            socket.display()
        ));
    }
    let images: Vec<&Image> = select(bundle, wanted)?;
    let path = bundle
        .dir
        .join(format!(".ferry-docker-load-{}.tar", std::process::id()));
    let _cleanup = RemovedOnDrop(path.clone());
    export_docker_archive(bundle, &images, index, platform, &path, cancel).with_context(|| {
        crate::tr!(
            "cannot write the archive beside the bundle",
            "无法在镜像包旁写入归档文件"
        )
    })?;
    let size = std::fs::metadata(&path)?.len();
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| {
            crate::tr!(
                "cannot connect to the docker daemon at {}",
                "无法连接 {} 处的 docker 守护进程",
                socket.display()
            )
        })?;
    let head = format!("POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut file = tokio::fs::File::open(&path).await?;
    tokio::io::copy(&mut file, &mut stream)
        .await
        .with_context(|| {
            crate::tr!(
                "streaming the archive to the docker daemon",
                "向 docker 守护进程发送归档文件"
            )
        })?;
    stream.flush().await?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).await?;
    let mut rest = String::new();
    reader.read_to_string(&mut rest).await?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            anyhow!(crate::tr!(
                "the docker daemon sent no HTTP answer",
                "docker 守护进程没有返回 HTTP 应答"
            ))
        })?;
    let body = rest
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    if !(200..300).contains(&code) {
        bail!(crate::tr!(
            "the docker daemon refused the images: HTTP {code} {body}",
            "docker 守护进程拒绝了这些镜像: HTTP {code} {body}"
        ));
    }
    let n = images.len();
    let loaded = crate::i18n::plural(n as u64, "image", "images");
    Ok(crate::tr!(
        "{loaded} loaded into the docker daemon at {}",
        "已将 {n} 个镜像载入 {} 处的 docker 守护进程",
        socket.display()
    ))
}
