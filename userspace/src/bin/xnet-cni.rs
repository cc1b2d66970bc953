//! `xnet-cni`: xnet's CNI plugin (`"type": "xnet"`); see `xnet::cni`.

fn main() {
    std::process::exit(xnet::cni::main());
}
