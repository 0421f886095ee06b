//! Compiles `proto/*.proto` with protox (no system `protoc`) and generates prost messages plus
//! tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["../proto/raft.proto", "../proto/ledger.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["../proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
