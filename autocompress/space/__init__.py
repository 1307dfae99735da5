from autocompress.space.space import ResolvedSpace, Rule, SearchSpace, resolve

__all__ = ["ResolvedSpace", "Rule", "SearchSpace", "resolve"]
