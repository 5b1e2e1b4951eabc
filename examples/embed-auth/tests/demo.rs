//! Runs the example and checks what it prints: the protected route refuses anonymous and forged
//! callers and serves the token holder.

use std::process::Command;

#[test]
fn the_demo_protects_the_app_routes() {
    let output = Command::new(env!("CARGO_BIN_EXE_example-embed-auth"))
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("without a token -> 401"), "{stdout}");
    assert!(
        stdout.contains("with a token    -> 200 OK \"monthly report of tenant acme\""),
        "{stdout}"
    );
    assert!(stdout.contains("with a forged token -> 401"), "{stdout}");
}
