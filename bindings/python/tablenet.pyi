"""Type hints for the tablenet extension module (see README.md)."""

from types import TracebackType
from typing import Dict, List, Optional, Tuple, Type, Union

__version__: str

# What can be sent: None inside tables only (a hole or an absent key).
Key = Union[bool, int, float, str, bytes, "BoolKey"]
Sendable = Union[
    None, bool, int, float, str, bytes, bytearray,
    List["Sendable"], Tuple["Sendable", ...], Dict[Key, "Sendable"],
]
# What arrives: lists for pure sequences, dicts otherwise; str for UTF-8
# strings, bytes for the rest (or always bytes with bytes_strings=True).
Received = Union[
    None, bool, int, float, str, bytes, List["Received"], Dict[Key, "Received"]
]

EVENT_CONNECT: int
EVENT_CONNECTED: int
EVENT_RECEIVE: int
EVENT_SERVER_CLOSE: int
EVENT_CLIENT_CLOSE: int
EVENT_ERROR: int
EVENT_DRAINED: int

class Error(Exception):
    """Base class of tablenet's errors (bad arguments raise ValueError or TypeError)."""

class ClosedError(Error):
    """The server, client or connection is closed, or its network was shut down."""

class QueueFullError(Error):
    """The send queue is full: wait for EVENT_DRAINED, then send again."""

class ConnectError(Error):
    """Connecting failed: nobody listening, wrong key, refused by the server..."""

class ConnectTimeout(ConnectError):
    """Connecting did not finish within the timeout."""

class BoolKey:
    """A boolean key of a received table that also has the equal integer key
    (`true` and `1`, or `false` and `0`), which a dict could not hold apart."""

    value: bool
    def __init__(self, value: bool) -> None: ...
    def __bool__(self) -> bool: ...

class Event:
    """Something that happened: `.event` is one of the EVENT_* constants."""

    event: int
    timestamp: float
    object: Optional[Union["Server", "Client", "Connection"]]
    errors: str
    packet: Received
    result: Optional[bool]
    socket: Optional[int]
    server: Optional["Server"]

class Network:
    """A network context with its own options."""

    def __init__(
        self,
        *,
        lossless: bool = True,
        inline_io: bool = False,
        nodelay: bool = True,
        event_capacity: Optional[int] = None,
        event_bytes: Optional[int] = None,
        send_queue_bytes: Optional[int] = None,
        max_connections: Optional[int] = None,
        max_frame_size: Optional[int] = None,
        max_depth: Optional[int] = None,
        handshake_timeout: Optional[float] = None,
        linger: Optional[float] = None,
        heartbeat: Union[None, float, bool] = None,
        idle_timeout: Union[None, float, bool] = None,
        keepalive: Union[None, float, bool] = None,
        cipher: Optional[str] = None,
        bytes_strings: bool = False,
        connection_events: Optional[int] = None,
        memory_budget: Optional[int] = None,
        frame_timeout: Union[None, float, bool] = None,
        max_handshaking: Optional[int] = None,
        max_connections_per_address: Optional[int] = None,
        failure_reports_per_second: Optional[int] = None,
        handshake_budget: Optional[float] = None,
        io_threads: Optional[int] = None,
    ) -> None: ...
    def server(self, address: str, port: int = 0, key: Optional[str] = None) -> "Server": ...
    def client(self, address: str, port: int, key: Optional[str] = None) -> "Client": ...
    def poll_events(self) -> List[Event]: ...
    def wait_events(self, timeout: float = 1.0) -> List[Event]: ...
    def pending_events(self) -> int: ...
    @property
    def linger(self) -> float: ...
    def shutdown(self, timeout: Optional[float] = None) -> bool: ...
    def __enter__(self) -> "Network": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Server:
    """A listening server (the Lua network module's network.Server)."""

    def __init__(
        self,
        address: str,
        port: int = 0,
        key: Optional[str] = None,
        *,
        network: Optional[Network] = None,
    ) -> None: ...
    def send(self, table: Sendable, *connections: "Connection") -> int: ...
    def broadcast(self, table: Sendable) -> int: ...
    def disconnect(self, *connections: "Connection") -> int: ...
    def connection_count(self) -> int: ...
    def close(self) -> None: ...
    @property
    def is_open(self) -> bool: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def socket(self) -> int: ...
    @property
    def network(self) -> Network: ...
    def __enter__(self) -> "Server": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Client:
    """A client connection (the Lua network module's network.Client)."""

    def __init__(
        self,
        address: str,
        port: int,
        key: Optional[str] = None,
        *,
        network: Optional[Network] = None,
    ) -> None: ...
    def send(self, table: Sendable) -> None: ...
    def wait_for_connect(self, timeout: float = 2.0) -> float: ...
    def disconnect(self) -> None: ...
    @property
    def is_connected(self) -> bool: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> Optional[int]: ...
    @property
    def socket(self) -> int: ...
    @property
    def network(self) -> Network: ...
    def __enter__(self) -> "Client": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Connection:
    """A connection a server accepted (handed out by EVENT_CONNECT); closes
    when Python no longer references it."""

    def send(self, table: Sendable) -> None: ...
    def disconnect(self) -> None: ...
    @property
    def is_open(self) -> bool: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def socket(self) -> int: ...
    @property
    def server(self) -> Optional[Server]: ...
    def __enter__(self) -> "Connection": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

def default_network() -> Network: ...
def poll_events() -> List[Event]: ...
def wait_events(timeout: float = 1.0) -> List[Event]: ...
