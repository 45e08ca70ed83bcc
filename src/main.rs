//! `brigade`: one binary, thin CLI. Everything lives in the library (its
//! command line in `src/cli/`), which a user's own worker binary shares
//! through `brigade::worker::main`.

fn main() -> std::process::ExitCode {
    brigade::cli_main()
}
