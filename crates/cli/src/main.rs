//! The `baton` binary.

fn main() -> std::process::ExitCode {
    baton::run(std::env::args_os())
}
