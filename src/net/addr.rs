//! Addresses for `bind` and `connect`: anything `std` can resolve
//! (`"localhost:4096"`, `("::1", 4096)`, a `SocketAddr`, a list of them),
//! every resolved address kept in order.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::Error;

/// Resolves `addr` (host names included) to every address it names, in
/// the resolver's order. An address that does not parse or resolve, or
/// resolves to nothing, is an error naming the `address` argument.
pub(crate) fn resolve(addr: impl ToSocketAddrs) -> Result<Vec<SocketAddr>, Error> {
    let invalid = |got: String| Error::InvalidArgument {
        argument: "address",
        expected: "a host name or IP address with a port, such as \"localhost:4096\", (\"::1\", 4096) or a SocketAddr",
        got,
    };
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| invalid(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(invalid("no address".into()));
    }
    Ok(addrs)
}

/// A client's port: any but 0 (there is nothing to connect to there).
pub(crate) fn client_port(port: u16) -> Result<u16, Error> {
    if port == 0 {
        return Err(Error::InvalidArgument {
            argument: "port",
            expected: "1..=65535",
            got: "0".into(),
        });
    }
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_literals_pairs_and_socket_addrs_resolve() {
        assert_eq!(
            resolve("127.0.0.1:80").unwrap(),
            ["127.0.0.1:80".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(resolve(("::1", 443)).unwrap()[0].port(), 443);
        assert!(!resolve("localhost:4096").unwrap().is_empty());
        let many: &[SocketAddr] = &["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()];
        assert_eq!(resolve(many).unwrap(), many);
        let err = resolve("127.0.0.1").unwrap_err().to_string();
        assert!(err.contains("`address`"), "{err}");
        assert!(client_port(0).is_err());
        assert_eq!(client_port(1).unwrap(), 1);
    }
}
