//! Compiles `proto/dht/v1/*.proto` with protox (pure Rust, so no system `protoc` is needed)
//! and generates the tonic services and prost messages from the resulting descriptor set.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir("proto/dht/v1")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    let fds = protox::compile(&files, ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".dht.v1")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
