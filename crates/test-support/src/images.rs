//! Local images: the Debian base and the runner stand-in, built once and
//! reused by tag.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use crate::workspace_root;

/// Tag of the Debian bookworm base image the tests build on.
pub const BASE_IMAGE: &str = "gha-base:bookworm";
/// Tag of the runner stand-in image the tests use as `RUNNER_IMAGE`.
pub const SIM_RUNNER_IMAGE: &str = "gha-sim-runner:test";

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

/// Path of a binary of this workspace in the same profile as the running
/// test, building it first (with cargo) when it is missing or stale.
///
/// # Panics
/// When cargo fails.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let _lock = lock("cargo-build");
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary in target/<profile>/deps")
        .to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        cargo.arg("--release");
    }
    run(&mut cargo, &format!("build {bin}"));
    profile_dir.join(bin)
}

/// Makes sure [`SIM_RUNNER_IMAGE`] holds the current `sim-runner` binary, and
/// returns its tag. Docker's layer cache makes this a no-op when nothing
/// changed.
///
/// # Panics
/// When the binary or the image cannot be built.
pub fn ensure_sim_runner_image() -> &'static str {
    let base = ensure_base_image();
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

fn run(command: &mut Command, what: &str) {
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
