"""Type stubs of the native module `kaito._kaito` (kaito-py/src). Use the `kaito` package."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__version__: str
DEFAULT_MODEL: str

_Event = Tuple[int, str, Optional[str], Optional[int]]
_Choice = Tuple[str, Optional[str], int]
_Callback = Callable[[bool, Any], None]

class Engine:
    """A loaded model (see `kaito.LLM`)."""

    def __init__(
        self,
        model: Optional[str] = None,
        *,
        workspace: Optional[Workspace] = None,
        backend: Optional[str] = None,
        threads: Optional[int] = None,
        ctx_size: Optional[int] = None,
        parallel: Optional[int] = None,
        max_queue: Optional[int] = None,
        cache_dir: Optional[str] = None,
        cache_max_gib: Optional[float] = None,
        cache_tiers: Optional[List[str]] = None,
        served_name: Optional[str] = None,
        deterministic: Optional[bool] = None,
    ) -> None: ...
    @property
    def model(self) -> str: ...
    @property
    def context_size(self) -> int: ...
    def info(self) -> Dict[str, Any]: ...
    def chat_prompt(self, messages: List[Any]) -> str: ...
    def complete(self, prompt: str, **sampling: Any) -> Tuple[int, List[_Choice]]: ...
    def complete_async(self, prompt: str, callback: _Callback, **sampling: Any) -> Task: ...
    def stream(self, prompt: str, **sampling: Any) -> Generation: ...
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> List[int]: ...
    def detokenize(self, tokens: List[int]) -> str: ...
    def embed(self, texts: List[str]) -> List[List[float]]: ...
    def embed_async(self, texts: List[str], callback: _Callback) -> Task: ...

class Generation:
    """The events of one running generation; closing or dropping it cancels the generation."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def n(self) -> int: ...
    def next_event(self) -> Optional[_Event]: ...
    def next_event_async(self, callback: _Callback) -> Task: ...
    def close(self) -> None: ...

class Task:
    """Native work behind an `await`; `cancel()` stops it and frees its engine slot."""

    def cancel(self) -> None: ...

class Workspace:
    """A KAITO `Workspace` (kaito.sh/v1beta1), parsed strictly: unknown or misspelt fields are
    errors naming the field path. Rendering and estimating need no cluster."""

    @staticmethod
    def from_yaml(text: str) -> Workspace:
        """Parses exactly one Workspace from YAML text (other documents, such as the ConfigMaps
        it references, are kept for :meth:`render`). Raises `kaito.InvalidSpecError`."""
    @staticmethod
    def from_file(path: Union[str, PathLike[str]]) -> Workspace:
        """:meth:`from_yaml` of a file's text."""
    @staticmethod
    def from_dict(data: Dict[str, Any]) -> Workspace:
        """A Workspace from a dict shaped like the YAML."""
    @property
    def name(self) -> str:
        """`metadata.name`."""
    def validate(self) -> None:
        """Checks every rule that needs no cluster (schema and KAITO's admission rules);
        raises `kaito.InvalidSpecError` listing every problem."""
    def render(self) -> List[Dict[str, Any]]:
        """The Kubernetes objects the controller would apply (StatefulSet, Services, ConfigMap,
        PodDisruptionBudget, NetworkPolicy, NodeClaims), as dicts."""
    def estimate(self) -> str:
        """The GPU/CPU sizing with the arithmetic behind it, as a report."""
    def to_yaml(self) -> str:
        """The Workspace as YAML."""
    def to_dict(self) -> Dict[str, Any]:
        """The Workspace as a dict."""

class Server:
    """A running in-process server (see `kaito.serve`)."""

    def __init__(self, engine: Engine, *, host: str = "127.0.0.1", port: int = 0, api_key: Optional[str] = None) -> None: ...
    @property
    def url(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def stop(self, timeout: float = 10.0) -> None: ...

def enable_logging(level: str = "INFO") -> bool:
    """Forwards kaito's `tracing` events at `level` and above ("ERROR", "WARN", "INFO",
    "DEBUG", "TRACE") to Python `logging`, under loggers named `kaito.<crate>.<module>`.
    Returns False if logging was already enabled (the first level stays)."""

def validate_workspace(yaml: str) -> str: ...
