"""``Dep[T]``: a name-injected dependency that Litestar passes through without validating it."""

from __future__ import annotations

from typing import Annotated, TypeAlias, TypeVar

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

T = TypeVar("T")

Dep: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]
