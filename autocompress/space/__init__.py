from autocompress.space.resolved import ResolvedSpace, resolve
from autocompress.space.space import Rule, SearchSpace

__all__ = ["ResolvedSpace", "Rule", "SearchSpace", "resolve"]
