//! Real container engines for the tests of ferry's docker and containerd sinks:
//! Debian's `dockerd` (package `docker.io`) and `containerd` (+ `ctr`), each started
//! as root with a private data root, state and socket under its own temporary
//! folder, so that tests run in parallel and never touch the machine's engines.
//!
//! Only image operations are used (`docker load`, `image inspect`, `save`; `ctr
//! images import`/`ls`), so the engines run without networking: no bridge, no
//! iptables, and the `vfs`/`native` storage that works in any sandbox.
//!
//! `start()` returns `None` (after printing why) only when the engine's binary is
//! missing or exits while starting; a test then prints that it skipped. An engine
//! that runs but never answers fails the test.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long an engine gets to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an engine gets to stop on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `dockerd` with its own data root, exec root and API socket (its own
/// containerd, too, which dockerd starts under the exec root). Stopped on drop.
pub struct DockerEngine {
    child: Child,
    socket: PathBuf,
    data_root: PathBuf,
    log_path: PathBuf,
    // Declared last: removed only after the daemon is gone (see `Drop`).
    dir: tempfile::TempDir,
}

impl DockerEngine {
    /// Starts a private docker engine and waits for `GET /_ping`. `None` (with the
    /// reason printed) when `dockerd` is not installed or exits while starting.
    pub fn start() -> Option<DockerEngine> {
        let dir = engine_dir("ferry-dockerd-");
        let socket = dir.path().join("docker.sock");
        let data_root = dir.path().join("data");
        let log_path = dir.path().join("dockerd.log");
        // An empty daemon.json, so that the machine's /etc/docker/daemon.json
        // cannot contradict the flags below.
        let config = dir.path().join("daemon.json");
        fs::write(&config, "{}").expect("writing daemon.json");
        let mut cmd = Command::new("dockerd");
        cmd.arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--userland-proxy=false",
            ]);
        let child = spawn_logged(cmd, &log_path, "dockerd")?;
        let mut engine = DockerEngine {
            child,
            socket,
            data_root,
            log_path,
            dir,
        };
        let ready = wait_ready(&mut engine.child, &engine.log_path, "dockerd", || {
            unix_get(&engine.socket, "/_ping")
                .is_some_and(|(status, body)| status == 200 && body.trim() == "OK")
        });
        if !ready {
            return None; // `engine` drops: whatever it left is cleaned up
        }
        Some(engine)
    }

    /// The API socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix://SOCKET`, as `DOCKER_HOST` and `docker -H` take it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The docker CLI aimed at this engine, with its own (empty) client config.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(self.host())
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the docker CLI; its output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.docker()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"))
    }

    /// `docker image inspect REF` as JSON (the first object), `None` when the
    /// engine has no such image.
    pub fn inspect(&self, reference: &str) -> Option<serde_json::Value> {
        let out = self.run(&["image", "inspect", reference]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("docker image inspect {reference}: not JSON: {e}"));
        v.get(0).cloned()
    }

    /// The repository:tag names of every image in the engine.
    pub fn image_names(&self) -> Vec<String> {
        let out = self.run(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert!(out.status.success(), "docker image ls: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The daemon's log (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and unmount its data root (a
        // bind mount onto itself); a killed daemon leaves that mount behind.
        stop(&mut self.child);
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(&self.data_root)
            .stderr(Stdio::null())
            .status();
    }
}

/// A running `containerd` with its own root, state and socket. Stopped on drop.
pub struct Containerd {
    child: Child,
    socket: PathBuf,
    log_path: PathBuf,
    // Declared last: removed only after the daemon is gone (see `Drop`).
    dir: tempfile::TempDir,
}

/// The snapshotter the tests' containerd unpacks into: `native` (plain copies)
/// needs no overlay or other mounts, so it works in any sandbox.
pub const SNAPSHOTTER: &str = "native";

impl Containerd {
    /// Starts a private containerd and waits until `ctr version` reaches it.
    /// `None` (with the reason printed) when `containerd` is not installed or exits
    /// while starting.
    pub fn start() -> Option<Containerd> {
        let dir = engine_dir("ferry-containerd-");
        let socket = dir.path().join("containerd.sock");
        let log_path = dir.path().join("containerd.log");
        let config = dir.path().join("config.toml");
        let path = |name: &str| toml_str(&dir.path().join(name));
        // CRI (kubernetes) is not needed and wants networking; `opt` would
        // install into /opt/containerd.
        let toml = format!(
            "version = 2\n\
             root = {root}\n\
             state = {state}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {sock}\n\
             [ttrpc]\n  address = {ttrpc}\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n",
            root = path("root"),
            state = path("state"),
            sock = toml_str(&socket),
            ttrpc = path("containerd.sock.ttrpc"),
            opt = path("opt"),
        );
        fs::write(&config, toml).expect("writing containerd config");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config);
        let child = spawn_logged(cmd, &log_path, "containerd")?;
        let mut engine = Containerd {
            child,
            socket,
            log_path,
            dir,
        };
        let ready = wait_ready(&mut engine.child, &engine.log_path, "containerd", || {
            let socket = &engine.socket;
            socket.exists()
                && ctr_command(socket)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        if !ready {
            return None;
        }
        Some(engine)
    }

    /// The grpc socket (what `ctr -a` and `CONTAINERD_ADDRESS` take).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `ctr -a SOCKET`, for any namespace (add `-n NS` before the subcommand).
    pub fn ctr(&self) -> Command {
        ctr_command(&self.socket)
    }

    /// Runs `ctr -a SOCKET -n NAMESPACE ARGS...`; its output whatever the status.
    pub fn run(&self, namespace: &str, args: &[&str]) -> Output {
        self.ctr()
            .args(["-n", namespace])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running ctr {args:?}: {e}"))
    }

    /// `ctr images ls` in a namespace: (name, target digest) of every image.
    pub fn images(&self, namespace: &str) -> Vec<(String, String)> {
        let out = self.run(namespace, &["images", "ls"]);
        assert!(out.status.success(), "ctr images ls: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1) // the header
            .filter_map(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                // REF TYPE DIGEST SIZE PLATFORMS LABELS
                Some((cols.first()?.to_string(), cols.get(2)?.to_string()))
            })
            .collect()
    }

    /// The daemon's log (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// `ctr -a SOCKET`, with the tests' snapshotter and no namespace from the environment.
fn ctr_command(socket: &Path) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("-a")
        .arg(socket)
        .env_remove("CONTAINERD_NAMESPACE")
        .env("CONTAINERD_SNAPSHOTTER", SNAPSHOTTER)
        .stdin(Stdio::null());
    cmd
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A temporary folder for one engine. Under /tmp with a short name: a unix
/// socket path may not be longer than 107 bytes.
fn engine_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("creating engine tempdir")
}

/// Spawns an engine in its own process group (so that the processes it starts
/// can be stopped with it), its output into `log`. `None`, with the reason
/// printed, when the binary cannot be run.
fn spawn_logged(mut cmd: Command, log: &Path, name: &str) -> Option<Child> {
    let out = File::create(log).expect("creating engine log");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log fd"))
        .stderr(out)
        .process_group(0);
    match cmd.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!("SKIPPED: cannot run {name} ({e}); scripts/setup.sh installs it");
            None
        }
    }
}

/// Polls `ready` until it holds. `false`, with the reason and log printed, when
/// the engine exited first; panics (with the log) when it runs but never answers.
fn wait_ready(child: &mut Child, log: &Path, name: &str, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(log).unwrap_or_default();
            eprintln!("SKIPPED: {name} cannot start here: it exited with {status}; log:\n{log}");
            return false;
        }
        if ready() {
            return true;
        }
        if start.elapsed() > START_TIMEOUT {
            stop(child);
            let log = fs::read_to_string(log).unwrap_or_default();
            panic!("{name} did not answer within {START_TIMEOUT:?}; log:\n{log}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM to the engine, then SIGKILL to its process group (at once if the
/// engine is gone, else after it had time to stop); reaps it.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let group = format!("-{pid}");
    let signal = |sig: &str, target: &str| {
        let _ = Command::new("kill")
            .args([sig, "--", target])
            .stderr(Stdio::null())
            .status();
    };
    if matches!(child.try_wait(), Ok(None)) {
        // The engine alone: it stops what it started itself.
        signal("-TERM", &pid);
        let start = Instant::now();
        while matches!(child.try_wait(), Ok(None)) && start.elapsed() < STOP_TIMEOUT {
            thread::sleep(Duration::from_millis(50));
        }
    }
    // Whatever is left of the group (a containerd or shim the engine started).
    signal("-KILL", &group);
    let _ = child.kill();
    let _ = child.wait();
}

/// `GET path` over a unix socket, HTTP/1.0 so the answer ends with the
/// connection: (status, body), `None` when nothing answers.
pub fn unix_get(socket: &Path, path: &str) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: engine\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A TOML basic string.
fn toml_str(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("path as a string")
}
