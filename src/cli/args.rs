//! The command line, as clap structures. Every flag has its help here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about = "Carry container images into air-gapped networks",
    long_about = "Carry container images into air-gapped networks.\n\n\
        `ferry save` pulls images from a registry into a bundle (tar data files plus a meta.yaml);\n\
        `ferry verify` checks a bundle after transport; `ferry upload` verifies it and pushes it,\n\
        byte for byte, into a registry on the other side. `ferry save --inc OLD_META` writes an\n\
        increment that carries only the blobs the old bundle did not.",
    after_help = "image-transmit's command line works too:\n  \
        ferry -src=NAME [-lst=FILE] [-inc=META] [-out=PREFIX] [-opt=k=v,...]   save (stdin without -lst)\n  \
        ferry -dst=NAME -img=META                                          upload\n\
        NAME is a registry of cfg.yaml (--config FILE, else ./cfg.yaml, else ./data/cfg.yaml).\n\n\
        Exit status: 0 when everything succeeded, 1 when any image or check failed, 2 for a usage error,\n\
        130 when interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Print only warnings, errors and the summary; no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail: each image and each blob as it completes, and after an upload or sync
    /// every reference written.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Without a terminal (CI logs, journald), log a progress line (bytes, speed, ETA, images
    /// done) every SECS seconds; 0: none. On a terminal, progress bars show it.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECS")]
    pub progress_interval: u64,
    /// How many times a failed request is tried again (connection errors, 5xx, 429, bodies cut short)
    /// [default: cfg `retries`, else 5].
    #[arg(long, global = true, value_name = "N")]
    pub retries: Option<usize>,
    /// The batch-job configuration (registries, credentials, rewrites, concurrency...);
    /// default ./cfg.yaml, else ./data/cfg.yaml, when present. See cfg.example.yaml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override cfg.yaml keys for this run: key=value[,key=value...] (maxconn, retries, singlefile,
    /// compressor, lang, outprefix, interval, platform, maxfilesize, files).
    #[arg(long, global = true, value_name = "KEY=VALUE,...")]
    pub opt: Option<String>,
    /// Seconds to wait for a connection to a registry.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
    pub connect_timeout: u64,
    /// Seconds of silence while reading a response before the request is tried again.
    #[arg(long, global = true, default_value_t = 120, value_name = "SECS")]
    pub read_timeout: u64,
    /// Seconds a small response (manifest, token, tag list, error) may take in all,
    /// however slowly it trickles in, before the request is tried again.
    #[arg(long, global = true, default_value_t = 120, value_name = "SECS")]
    pub response_timeout: u64,
    /// Slowest average speed, in bytes/s, a blob download may keep over a --read-timeout
    /// window of waiting before it is tried again (resuming); uploads get their size at
    /// this speed. 0: no minimum.
    #[arg(long, global = true, default_value_t = 1024, value_name = "BYTES")]
    pub min_rate: u64,
    /// How log lines are written on standard error: text (timestamped lines, progress bars on a
    /// terminal) or json (one object a line: time, level, message; no progress bars), for log
    /// collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Timestamped lines; progress bars on a terminal.
    Text,
    /// One JSON object a line: {"time", "level", "message"}.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pull images from registries (or OCI layouts, docker archives, bundles) into a bundle: N tar
    /// data files plus a meta.yaml.
    Save(SaveArgs),
    /// Verify a bundle, then push it byte-exact into a registry.
    Upload(UploadArgs),
    /// Check a bundle as it arrived: files present, sizes, sha256 of each file and of each blob.
    Verify(VerifyArgs),
    /// Copy images registry to registry directly (no files), with the same engine; --interval keeps it running.
    Sync(SyncArgs),
    /// Write a bundle's images as an OCI image layout or a `docker load` archive.
    Export(ExportArgs),
    /// Copy images between any two transports, with skopeo's syntax: docker://REF, oci:DIR[:REF],
    /// docker-archive:FILE[:REF], docker-daemon:REF, containerd:REF, bundle:META[:REF] (source only).
    Copy(CopyArgs),
    /// List a bundle: images, data files, bases, failures.
    Ls(LsArgs),
    /// Serve a bundle (and its bases) as a read-only registry, streaming from the tar files.
    Serve(ServeArgs),
    /// A local web interface in the browser: registries, save, upload, sync, verify, copy, live
    /// progress, bundles and history, driving the same engine as these commands.
    Ui(UiArgs),
    /// Show an image in a registry: digest, media type, platforms, layers (--raw: the manifest bytes).
    Inspect(InspectArgs),
    /// List the tags of a repository in a registry.
    Tags(TagsArgs),
    /// Store credentials for a registry in docker's config.json (shared with docker and skopeo).
    Login(LoginArgs),
    /// Remove stored credentials for a registry from docker's config.json and the containers
    /// auth.json files (skopeo's, podman's) that ferry reads.
    Logout(LogoutArgs),
    /// Print a shell completion script: ferry completions bash > /etc/bash_completion.d/ferry
    Completions(CompletionsArgs),
    /// Sign a saved bundle: write META.sig, an SSH signature (`ssh-keygen -Y sign`, namespace
    /// ferry-bundle) over the meta, which records every data file's sha256.
    Sign(SignArgs),
}

/// `--trust FILE`: the bundle must carry a good signature by a key of this file.
#[derive(Args, Debug, Clone)]
pub struct TrustArg {
    /// Refuse the bundle unless META.sig is a good SSH signature (namespace ferry-bundle) by a key of
    /// this OpenSSH allowed_signers file; checked before anything of the bundle is read or pushed, and
    /// for an increment's base bundles too when they are read [default: cfg `trust`].
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The bundle's meta file (or its folder when that holds one bundle); the signature goes
    /// beside it as META.sig.
    #[arg(value_name = "META")]
    pub meta: PathBuf,
    /// The OpenSSH private key to sign with (Ed25519, ECDSA or RSA, as ssh-keygen writes it; an
    /// encrypted key asks for its passphrase on the terminal) [default: cfg `sign.key`].
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Read the key's passphrase from this environment variable [default: cfg `sign.passphrase_env`].
    #[arg(long, value_name = "NAME")]
    pub passphrase_env: Option<String>,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Target: a cfg.yaml target name, or HOST[:PORT][/NAMESPACE] [default: the first target in cfg.yaml].
    #[arg(short, long, value_name = "DEST", conflicts_with = "dst_name")]
    pub dst: Option<String>,
    #[arg(long, value_name = "NAME", hide = true)]
    pub dst_name: Option<String>,
    /// Number of concurrent blob copies [default: cfg `maxconn`, else 8]; raised up to 8×N for
    /// small blobs and requests while round trips are slow (a WAN), never for large transfers.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Keep running: re-resolve the tags and copy what changed every DURATION (e.g. 30s, 5m, 1h; a bare
    /// number is seconds). Ctrl-C or SIGTERM stops it cleanly between blobs (exit 0).
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Keep running at cfg `interval` seconds (default 60), like image-transmit's -watch.
    #[arg(long, conflicts_with = "interval")]
    pub watch: bool,
    /// Keep running and listen on ADDR (HOST:PORT) for registry push notifications at POST /events
    /// (docker-registry's `notifications:` endpoints, Harbor webhooks): a push of a listed image is
    /// synced within seconds. GET /metrics (Prometheus) and GET /healthz are served there too. With
    /// --interval, full rounds still run as a safety net.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The secret that POST /events must carry in its Authorization header (as SECRET or `Bearer
    /// SECRET`); without one, anyone who reaches ADDR can trigger a sync.
    #[arg(
        long,
        value_name = "SECRET",
        env = "FERRY_EVENTS_SECRET",
        hide_env_values = true,
        requires = "listen"
    )]
    pub events_secret: Option<String>,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cosign: CosignArg,
    /// Resolve and plan one round only: print what would be fetched, pushed, skipped because the
    /// target has it, and mounted, with sizes; push nothing.
    #[arg(long, conflicts_with_all = ["interval", "watch", "listen"])]
    pub dry_run: bool,
    /// Print one JSON document on standard output instead of text: every image with its source,
    /// target, digest, bytes, state and the reason of a failure; timings (schema: README, "JSON
    /// output"); a daemon prints one a round, each on one line.
    #[arg(long)]
    pub json: bool,
}

/// How the HTTP server of `serve` and `sync --listen` holds against its clients.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Most connections served at once; past it the connection idle longest (kept alive between
    /// requests), else one whose client has kept it waiting 10s (not taking its answer, or still
    /// dripping its request body), is closed for the new client, which waits only while all are
    /// busy.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// Time a client has to send a request's headers (also how long a kept-alive connection may sit
    /// idle between requests): 30s, 5m, or seconds.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub header_timeout: String,
    /// A connection on which no byte moves either way for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub idle_timeout: String,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `--json` of the commands that print one document of what they found (ls, tags,
/// verify): one help text for all three.
#[derive(Args, Debug, Clone, Copy)]
pub struct JsonArg {
    /// Print one JSON document on standard output instead of text (schema: README, "JSON output").
    #[arg(long)]
    pub json: bool,
}

/// `--require-cosign KEY.pub`: the image policy of upload and sync.
#[derive(Args, Debug, Clone)]
pub struct CosignArg {
    /// Push only images that carry a cosign signature by this public key (cosign.pub: PEM, ECDSA
    /// P-256) whose payload names the image's manifest digest; the others fail with the reason.
    /// Signatures are cosign's sha256-<hex>.sig images (for upload: saved with --with-referrers).
    #[arg(long, value_name = "KEY.pub")]
    pub require_cosign: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Where the images come from: docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF],
    /// docker-archive:FILE[:REF], docker-daemon:REF, bundle:META[:IMAGE] (all of a bundle's images
    /// without IMAGE).
    #[arg(value_name = "SRC")]
    pub src: String,
    /// Where they go: docker://HOST/REPO[:TAG] for one image (the tag defaults to the source's),
    /// docker://HOST[/NAMESPACE] for all of a bundle, oci:DIR[:REF], docker-archive:FILE[:REF],
    /// docker-daemon:REF, containerd:REF (namespace: $CONTAINERD_NAMESPACE, else default).
    #[arg(value_name = "DST")]
    pub dst: String,
    /// Copy every platform of a multi-platform image (what registries and OCI layouts get without
    /// --platform too); archives and engines hold one platform and refuse it.
    #[arg(long, conflicts_with = "platform")]
    pub all: bool,
    /// Keep only these platforms of multi-platform images: os/arch[/variant][,...] [default: all for
    /// registries and layouts, the host's for archives and engines].
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// Also copy the signatures, attestations and SBOMs that refer to each image.
    #[arg(long)]
    pub with_referrers: bool,
    /// Folder with the base bundles of an incremental bundle source (besides its own folder).
    #[arg(long = "base", value_name = "DIR")]
    pub base_dirs: Vec<PathBuf>,
    /// Number of concurrent blob copies [default: cfg `maxconn`, else 8]; raised up to 8×N for
    /// small blobs and requests while round trips are slow (a WAN), never for large transfers.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Plan only: print what would be read, written, skipped because the destination has it, and
    /// mounted, with sizes; write nothing (not even a new layout folder).
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document on standard output instead of text: every image with its source,
    /// target, digest, bytes, state and the reason of a failure; timings (schema: README, "JSON
    /// output").
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub trust: TrustArg,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The bundle's meta file, or its folder when that holds one bundle.
    #[arg(value_name = "META")]
    pub meta: PathBuf,
    /// Images to export, as the bundle records them (the reference given at save time, or
    /// repository:tag); all images of the bundle when none is given (--oci only).
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Write an OCI image layout into DIR (index.json entries named repository:tag).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "docker_archive",
        conflicts_with = "docker_archive"
    )]
    pub oci: Option<PathBuf>,
    /// Write a `docker load` archive to FILE.
    #[arg(long, value_name = "FILE")]
    pub docker_archive: Option<PathBuf>,
    /// For --oci: convert docker-typed images to OCI media types (skopeo and podman read only
    /// OCI-typed entries of a layout). This writes new manifests, so their digests change and
    /// signatures made for the originals no longer match; configs and layers stay as they are.
    #[arg(long, requires = "oci")]
    pub oci_media_types: bool,
    /// Folders where base bundles of an increment are (default: beside the bundle).
    #[arg(long = "base", value_name = "DIR")]
    pub base_dirs: Vec<PathBuf>,
    /// For --docker-archive: the platform of multi-platform images [default: this machine's].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub trust: TrustArg,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The bundle's meta file, or its folder when that holds one bundle.
    #[arg(value_name = "META")]
    pub meta: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub listen: String,
    /// Folders where base bundles of an increment are (default: beside the bundle).
    #[arg(long = "base", value_name = "DIR")]
    pub base_dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub trust: TrustArg,
}

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Address to listen on. Keep it on loopback: whoever has the access token printed at start can
    /// start transfers and edit cfg.yaml.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Open the interface in the default browser (xdg-open).
    #[arg(long)]
    pub open: bool,
    /// Folder for bundles: saves go to DIR/YYYYMMDD/, the Bundles screen lists what is in it, and the
    /// job history and image lists are kept in DIR/.ferry-ui/.
    #[arg(short, long, value_name = "DIR", default_value = "data")]
    pub out: PathBuf,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// The bundle's meta file, or its folder when that holds one bundle.
    #[arg(value_name = "META")]
    pub meta: PathBuf,
    /// Also check the signature's key against this OpenSSH allowed_signers file and name the signer
    /// [default: cfg `trust`].
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    #[command(flatten)]
    pub output: JsonArg,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Image reference.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Print the manifest exactly as the registry serves it.
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// Print the details as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TagsArgs {
    /// Repository, e.g. registry.example.com:5000/team/app
    #[arg(value_name = "REPOSITORY")]
    pub repository: String,
    #[command(flatten)]
    pub output: JsonArg,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port], e.g. registry.example.com:5000
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    /// User name.
    #[arg(short, long, value_name = "USER")]
    pub username: String,
    /// Read the password from standard input (one line), so it stays out of shell history.
    #[arg(long)]
    pub password_stdin: bool,
    /// Store without checking the credentials against the registry (for a registry not reachable now).
    #[arg(long)]
    pub no_check: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port].
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Where images come from: shared by `save` and `sync`.
#[derive(Args, Debug)]
pub struct SourceArgs {
    /// Image references, e.g. nginx:1.27, registry.example.com:5000/team/app@sha256:...
    ///
    /// Or tag selectors: REPO:* (every tag), REPO:~REGEX, REPO:semver(>=1.2 <2), each
    /// optionally followed by |newest(N) (only the N newest); !REPO:SELECTOR excludes
    /// (see README, "Tag selection").
    ///
    /// save also reads local images, in `ferry copy`'s syntax: oci:DIR[:REF],
    /// docker-archive:FILE[:REF], docker-daemon:REF, bundle:META[:REF] (a plain reference
    /// is a registry's).
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Read references from FILE, one a line (blank lines and # comments ignored; `SOURCE -> TARGET`
    /// renames); `-` reads standard input. Without IMAGE and --list, references are read from
    /// standard input when it is not a terminal, else from cfg `images:`. Any line may be a tag
    /// selector.
    #[arg(short, long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// The cfg.yaml source registry to pull from, by name [default: the first source in cfg.yaml].
    /// List lines are then relative to it (repository:tag), and full references naming another
    /// host are fetched from it, as image-transmit does.
    #[arg(long, value_name = "NAME")]
    pub src: Option<String>,
    /// Keep only these platforms of multi-platform images: os/arch[/variant][,...]. With exactly
    /// one, the image becomes that platform's own manifest [default: cfg `platform`, else all].
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// A local blob cache folder, read before the network [default: cfg `cache.pathname`, under ./data].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Also carry the signatures, attestations and SBOMs that refer to each image (OCI referrers API,
    /// else cosign's sha256-<hex>.sig/.att/.sbom and the OCI fallback tags) [default: cfg `referrers`].
    #[arg(long)]
    pub with_referrers: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Folder for bundles; each save goes to DIR/YYYYMMDD/.
    #[arg(short, long, value_name = "DIR", default_value = "data")]
    pub out: PathBuf,
    /// Number of tar data files to spread the blobs over (balanced by size) [default: cfg `files`,
    /// 1 with cfg `singlefile: true`, else 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub files: Option<u16>,
    /// No data file grows past SIZE (e.g. 4G for FAT32 sticks, 700M); the bundle gets as many files
    /// as it needs [default: cfg `maxfilesize`, else no limit].
    #[arg(long, value_name = "SIZE")]
    pub max_file_size: Option<String>,
    /// Number of concurrent downloads [default: cfg `maxconn`, else 8].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// File name prefix: PREFIX_full_YYYYMMDDHHMM_N.tar and PREFIX_full_YYYYMMDDHHMM_meta.yaml
    /// [default: cfg `outprefix`, else img].
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Compress the data files: zstd writes .tar.zst files (each entry its own zstd frame, so upload
    /// still reads single blobs) [default: cfg `compressor`, else none].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub compress: Option<Compression>,
    /// Write an incremental bundle: skip every layer and config that this earlier bundle's meta records
    /// (repeat for several bases). Manifests are always carried.
    #[arg(long = "inc", value_name = "OLD_META")]
    pub bases: Vec<PathBuf>,
    /// Sign the bundle: write META.sig, an SSH signature (as `ssh-keygen -Y sign -n ferry-bundle`
    /// makes) over the meta with this OpenSSH private key; an encrypted key's passphrase is asked
    /// for before the save starts [default: cfg `sign.key`].
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// With --inc: refuse a base bundle whose META.sig is not a good signature by a key of this
    /// OpenSSH allowed_signers file, before anything is downloaded [default: cfg `trust`].
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Resolve and plan only: print what would be fetched (or taken from the cache or left to a base) and how the data files would
    /// come out, with sizes; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document on standard output instead of text: every image with its source,
    /// target, digest, bytes, state and the reason of a failure; files; timings (schema: README,
    /// "JSON output").
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    /// Plain tar data files.
    None,
    /// zstd-compressed tar data files (.tar.zst).
    Zstd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VerifyMode {
    /// Files, sizes and tar structure against the meta before pushing; every blob pushed is checked
    /// against its digest as it streams out (each byte read once), and a damaged bundle is refused
    /// as a whole: no manifest, no tag (default).
    Full,
    /// The same checks, but a damaged blob fails only the images that need it (for a trusted copy).
    Size,
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The bundle's meta file (..._meta.yaml), or its folder when that holds one bundle.
    #[arg(value_name = "META")]
    pub meta: PathBuf,
    /// Target: the name of a cfg.yaml target registry, `docker` for the local docker daemon (its socket,
    /// or DOCKER_HOST=unix://PATH), `containerd[:NS]` for containerd (through `ctr`; its socket, or
    /// CONTAINERD_ADDRESS=PATH; namespace NS, else `default`), or HOST[:PORT][/NAMESPACE]; with a namespace,
    /// app/web:1.0 goes to HOST/NAMESPACE/app/web:1.0. Loopback hosts use plain HTTP unless given as
    /// https://HOST [default: the first target in cfg.yaml].
    #[arg(short, long, value_name = "DEST", conflicts_with = "dst_name")]
    pub dst: Option<String>,
    /// The name of a cfg.yaml target registry (what image-transmit's -dst=NAME means).
    #[arg(long, value_name = "NAME", hide = true)]
    pub dst_name: Option<String>,
    /// Number of concurrent blob uploads [default: cfg `maxconn`, else 8]; raised up to 8×N for
    /// small blobs and requests while the registry's round trips are slow (a WAN), never for large
    /// transfers.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// How to check the bundle: its structure before pushing, every blob's digest as it is pushed.
    #[arg(long, value_enum, default_value_t = VerifyMode::Full)]
    pub verify: VerifyMode,
    #[command(flatten)]
    pub trust: TrustArg,
    #[command(flatten)]
    pub cosign: CosignArg,
    /// Push a bundle that lacks images which failed at save time (they are listed
    /// in its meta); without this, such a bundle is refused before anything is pushed.
    #[arg(long)]
    pub allow_partial: bool,
    /// Verify the bundle and plan only: print what would be pushed, skipped because the target has
    /// it, and mounted, with sizes; push nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document on standard output instead of text: every image with its source,
    /// target, digest, bytes, state and the reason of a failure; timings (schema: README, "JSON
    /// output").
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The bundle's meta file (..._meta.yaml), or its folder when that holds one bundle.
    #[arg(value_name = "META")]
    pub meta: PathBuf,
    /// Check only presence and sizes, not digests.
    #[arg(long)]
    pub size_only: bool,
    #[command(flatten)]
    pub trust: TrustArg,
    #[command(flatten)]
    pub output: JsonArg,
}
