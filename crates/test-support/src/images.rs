//! Local images: the Debian base, the runner stand-in and the Docker engine
//! (`docker:dind` stand-in), built once and reused by tag.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::workspace_root;

/// Tag of the Debian bookworm base image the tests build on.
pub const BASE_IMAGE: &str = "gha-base:bookworm";
/// Tag of the runner stand-in image the tests use as `RUNNER_IMAGE`.
pub const SIM_RUNNER_IMAGE: &str = "gha-sim-runner:test";
/// Tag of the Docker engine image (the stand-in for `docker:dind`) that a
/// runner's private engine runs from in the tests.
pub const DIND_IMAGE: &str = "gha-dind:bookworm";
/// Where [`DIND_IMAGE`] keeps its Docker CLI (Debian's `docker.io`).
const DIND_DOCKER_CLI: &str = "/usr/bin/docker";

/// Makes sure [`BASE_IMAGE`] exists (pull, or debootstrap + import), and
/// returns its tag.
///
/// # Panics
/// When neither way works; the message says why.
pub fn ensure_base_image() -> &'static str {
    let script = workspace_root().join("scripts/ensure-base-image.sh");
    run(
        Command::new("bash").arg(script).arg(BASE_IMAGE),
        "make the base image",
    );
    BASE_IMAGE
}

/// Makes sure [`DIND_IMAGE`] exists and holds the current
/// `docker/dind/entrypoint.sh` (debootstrap with Debian's `docker.io`, then
/// import; one to two minutes the first time), and returns its tag.
///
/// # Panics
/// When the image cannot be built (no debootstrap, no Debian mirror).
pub fn ensure_dind_image() -> &'static str {
    // The script serialises concurrent builds with its own file lock.
    let script = workspace_root().join("scripts/ensure-dind-image.sh");
    run(
        Command::new("bash").arg(script).arg(DIND_IMAGE),
        "make the Docker engine image",
    );
    DIND_IMAGE
}

/// Path of a binary of this workspace in the same profile as the running
/// test, building it first (with cargo) when it is missing or stale.
///
/// # Panics
/// When cargo fails.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let _lock = lock("cargo-build");
    // Test executables live in target/<profile>/deps/, binaries (the
    // benchmark) in target/<profile>/.
    let exe = std::env::current_exe().expect("current exe");
    let mut profile_dir = exe.parent().expect("exe in a directory").to_path_buf();
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir.pop();
    }
    let binary = profile_dir.join(bin);
    // `cargo nextest run --workspace` has built it already: reuse it when it
    // is newer than its package's sources (a cargo call here could rebuild
    // dependencies with another feature set and hold the build lock).
    if is_fresh(&binary, &workspace_root().join("crates").join(package)) {
        return binary;
    }
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        cargo.arg("--release");
    }
    run(&mut cargo, &format!("build {bin}"));
    binary
}

/// Whether `binary` exists and is newer than every file under `sources`.
fn is_fresh(binary: &Path, sources: &Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return false;
    };
    newest_file(sources).is_some_and(|newest| newest <= built)
}

fn newest_file(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_file(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}

/// Makes sure [`SIM_RUNNER_IMAGE`] holds the current `sim-runner` binary, and
/// returns its tag. Docker's layer cache makes this a no-op when nothing
/// changed.
///
/// Built without a registry: on [`BASE_IMAGE`], with the Docker CLI (a job's
/// `run:` script may call `docker`) copied from [`DIND_IMAGE`], whose
/// Debian-built CLI links against the same bookworm libc as the base (the
/// Dockerfile's default, `docker:cli`, would need a pull).
///
/// # Panics
/// When the binary or the image cannot be built.
pub fn ensure_sim_runner_image() -> &'static str {
    let base = ensure_base_image();
    let docker_cli = ensure_dind_image();
    let binary = workspace_binary("github-sim", "sim-runner");
    let _lock = lock("sim-runner-image");
    let context = std::env::temp_dir().join("gha-sim-runner-context");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).expect("create build context");
    std::fs::copy(&binary, context.join("sim-runner")).expect("copy sim-runner");
    let dockerfile = workspace_root().join("docker/sim-runner.Dockerfile");
    run(
        Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "--quiet", "-t", SIM_RUNNER_IMAGE, "-f"])
            .arg(&dockerfile)
            .args(["--build-arg", &format!("RUST_IMAGE={base}")])
            .args(["--build-arg", &format!("BASE_IMAGE={base}")])
            .args(["--build-arg", "PREBUILT=sim-runner"])
            .args(["--build-arg", &format!("DOCKER_CLI_IMAGE={docker_cli}")])
            .args(["--build-arg", &format!("DOCKER_CLI_PATH={DIND_DOCKER_CLI}")])
            .arg(&context),
        "build the sim-runner image",
    );
    SIM_RUNNER_IMAGE
}

/// Holds an exclusive file lock named `name` until dropped.
fn lock(name: &str) -> File {
    let path = std::env::temp_dir().join(format!("gha-test-{name}.lock"));
    let file = File::create(&path).expect("create lock file");
    file.lock().expect("lock");
    file
}

pub(crate) fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
