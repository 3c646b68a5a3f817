//! The stand-in runner image (`docker/sim-runner.Dockerfile`, built as the other crates'
//! tests build it) is shaped like the official runner image where a job can tell: user
//! `runner` (uid 1001) in group `docker` (gid 123), `run.sh`, bash, a Docker CLI, and a
//! `_work` directory the runner owns.

use std::process::Command;

use test_support::dind::LabelledResources;
use test_support::ensure_sim_runner_image;

#[test]
fn the_stand_in_image_has_bash_a_docker_cli_and_the_runner_in_group_docker() {
    let image = ensure_sim_runner_image();
    let resources = LabelledResources::new();
    let output = Command::new("docker")
        .args(["run", "--rm", "--network", "none"])
        .args(resources.label_args())
        .args(["--entrypoint", "bash", image, "-c"])
        .arg(
            "id -un; id -u; id -G; getent group docker; readlink /home/runner/run.sh; \
             stat -c %U /home/runner/_work; command -v docker; docker --version",
        )
        .output()
        .expect("docker CLI");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["runner", "1001"], "{stdout}");
    assert!(
        lines[2].split_whitespace().any(|gid| gid == "123"),
        "{stdout}"
    );
    assert_eq!(
        lines[3..7],
        [
            "docker:x:123:runner",
            "/usr/local/bin/sim-runner",
            "runner",
            "/usr/local/bin/docker"
        ],
        "{stdout}"
    );
    assert!(lines[7].starts_with("Docker version"), "{stdout}");
}
