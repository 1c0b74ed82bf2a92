//! The Lua API's own argument rules, which the Lua network module this API
//! reproduces documents: an IP literal, ports 1024..=65535 (0 lets a server
//! choose), `WaitForConnect` between 0.25 and 10 s. The Rust API is wider
//! (host names, any port, any timeout); scripts keep these rules and their
//! messages. Every error names the argument and its valid range.

use std::net::IpAddr;

use crate::error::Error;

pub(crate) fn address(text: &str) -> Result<IpAddr, Error> {
    text.trim().parse().map_err(|_| Error::InvalidArgument {
        argument: "address",
        expected: "an IPv4 or IPv6 literal such as 127.0.0.1 or ::1",
        got: format!("{text:?}"),
    })
}

/// A server's port: 0 lets the OS choose, else 1024..=65535.
pub(crate) fn server_port(port: u16) -> Result<u16, Error> {
    if port == 0 || port >= 1024 {
        Ok(port)
    } else {
        Err(Error::InvalidArgument {
            argument: "port",
            expected: "1024..=65535, or 0 to let the OS choose",
            got: port.to_string(),
        })
    }
}

/// A client's port: 1024..=65535.
pub(crate) fn client_port(port: u16) -> Result<u16, Error> {
    if port >= 1024 {
        Ok(port)
    } else {
        Err(Error::InvalidArgument {
            argument: "port",
            expected: "1024..=65535",
            got: port.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_the_lua_apis() {
        assert!(address("127.0.0.1").is_ok());
        assert!(address("::1").is_ok());
        assert!(
            address("localhost")
                .unwrap_err()
                .to_string()
                .contains("address")
        );
        assert!(server_port(0).is_ok());
        assert!(
            server_port(1023)
                .unwrap_err()
                .to_string()
                .contains("1024..=65535")
        );
        assert!(client_port(0).is_err());
        assert!(client_port(1024).is_ok());
    }
}
