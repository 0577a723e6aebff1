//! `orion-setup --models-from DIR` on the real fixtures: good exports are checked in the
//! worker's own interpreter and installed under the names discovery finds; a corrupt file
//! and one whose size cannot be told are refused, each with its reason, and nothing of
//! them lands in the model directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use orion_tests::{bins, fixtures};

fn config(dir: &Path) -> String {
    format!(
        r#"instance_id = "setup-test"
[camera]
source = "test://ball"
[detector]
model_dir = "{models}"
size = "n"
classes = ["person", "Normal", "Fall"]
python = "{python}"
worker_dir = "{worker}"
[mqtt]
enabled = false
[supervisor]
socket_dir = "{dir}/run"
state_dir = "{dir}/state"
"#,
        models = dir.join("models").display(),
        python = fixtures::python().unwrap().display(),
        worker = fixtures::repo().join("python").display(),
        dir = dir.display(),
    )
}

/// Runs orion-setup in `dir`, with `--models-from` relative to it (as an operator types it).
fn setup(dir: &Path, from: &str) -> (i32, String) {
    let out = Command::new(bins::locate("orion-setup").unwrap())
        .current_dir(dir)
        .args(["--no-venv", "--config", "orion.toml", "--models-from", from])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn models_from_a_directory_are_checked_and_installed_under_discovered_names() {
    let dir = std::env::temp_dir().join(format!("orion-setup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let from = dir.join("exports");
    std::fs::create_dir_all(&from).unwrap();
    std::fs::write(dir.join("orion.toml"), config(&dir)).unwrap();
    let real = fixtures::fixture("models/real").unwrap();
    for (src, name) in [
        ("yolo11n_yolov3-tiny_640.onnx", "yolo11n.onnx"),
        ("yolo11n_yolov3-tiny_320.onnx", "yolo11n_tiny_320.onnx"),
        ("yolo11m_fall_640.onnx", "yolo11m_fall.onnx"),
        ("yolo11n_yolov3-tiny_640.onnx", "mystery.onnx"),
    ] {
        std::fs::copy(real.join(src), from.join(name)).unwrap();
    }
    // Half a model, as a broken download leaves it.
    let whole = std::fs::read(real.join("yolo11n_yolov3-tiny_640.onnx")).unwrap();
    std::fs::write(from.join("yolo11s_cut.onnx"), &whole[..whole.len() / 3]).unwrap();

    let (code, text) = setup(&dir, "exports");
    assert_eq!(code, 1, "two files refused: {text}");
    let models = dir.join("models");
    for (name, line) in [
        ("yolo11n_640.onnx", "input 640, output [1,84,"),
        ("yolo11n_320.onnx", "input 320, output [1,84,"),
        ("yolo11m_640.onnx", "input 640, output [1,6,8400]"),
    ] {
        assert!(models.join(name).is_file(), "{name}: {text}");
        let installed = text
            .lines()
            .find(|l| l.contains("installed") && l.contains(name))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        assert!(installed.contains(line), "{installed}");
    }
    let m = std::fs::metadata(models.join("yolo11n_640.onnx")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
        0o644
    );
    assert!(
        text.contains("NOT installed") && text.contains("mystery.onnx: cannot tell its size"),
        "{text}"
    );
    assert!(text.contains("yolo11s_cut.onnx: "), "{text}");
    let names: Vec<String> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        3,
        "only the good ones, no temporary files: {names:?}"
    );
    // Discovery now finds them, and the config check passes.
    assert!(
        text.contains("n: 640 yolo11n_640.onnx, 320 yolo11n_320.onnx"),
        "{text}"
    );
    assert!(text.contains("m: 640 yolo11m_640.onnx, 320 -"), "{text}");
    assert!(text.contains("config: oriond --check-config"), "{text}");

    // Only good files: ready.
    std::fs::remove_file(from.join("mystery.onnx")).unwrap();
    std::fs::remove_file(from.join("yolo11s_cut.onnx")).unwrap();
    let (code, text) = setup(&dir, "exports");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("\nready"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
