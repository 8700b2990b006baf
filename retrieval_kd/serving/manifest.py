"""manifest.json as a schema: types, ranges, and relative paths inside the bundle for every file it names.

`Manifest` is what every bundle carries; a kind narrows it with its own subclass (`Searcher.manifest_model`):
`DenseManifest` types the encoder (file, max_length) and index (nprobe) sections, `MedicalManifest` the retrieval
section, `ConversationalManifest` the query mixture. Every file a section names must be listed in `files`, so the file the server loads is the one whose
sha256 it checked. `validate_manifest` turns a pydantic error into one line naming the manifest and the field.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from retrieval_kd.errors import BundleError
from retrieval_kd.methods.disco.mixing import MAX_WEIGHT
from retrieval_kd.serving.runtime import MAX_LENGTH

FORMAT_VERSION = 1
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_RE = re.compile(NAME_PATTERN)


def relative_path(rel: str) -> str:
    """A POSIX path relative to the bundle folder that cannot leave it (no '..', no root, no drive, no NUL)."""
    p = PurePosixPath(rel)
    if (not rel or "\\" in rel or "\x00" in rel or p.is_absolute() or ".." in p.parts or ":" in p.parts[0]
            or rel != p.as_posix()):
        raise ValueError(f"{rel!r} points outside the bundle folder (it must be a relative path inside it)")
    return rel


RelPath = Annotated[StrictStr, AfterValidator(relative_path)]


class _Section(BaseModel):
    """A manifest section: the typed fields are checked, other (informational) fields are kept as they are."""

    model_config = ConfigDict(extra="allow")


class FileEntry(_Section):
    sha256: StrictStr = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: StrictInt | None = Field(None, ge=0)


class DocstoreSection(_Section):
    file: RelPath = "docstore.sqlite"
    count: StrictInt | None = Field(None, ge=0)


class Manifest(_Section):
    """What every bundle's manifest.json holds."""

    format_version: Literal[1]
    kind: StrictStr = Field(min_length=1, max_length=64)
    name: StrictStr
    files: dict[RelPath, FileEntry]
    created: StrictStr | None = None
    encoder: dict[str, Any] | None = None
    index: dict[str, Any] | None = None
    docstore: DocstoreSection | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _named_files_are_listed(self) -> Manifest:
        if not NAME_RE.match(self.name) or self.name in {".", ".."}:
            raise ValueError(f"name {self.name!r} must match {NAME_PATTERN}")
        for field, rel in self.named_files().items():
            if rel not in self.files:
                raise ValueError(f"{field}: the bundle needs file {rel!r}, not listed in 'files' "
                                 "(so it could not be hash-checked)")
        return self

    def named_files(self) -> dict[str, str]:
        """{"section.field": path} of every file a section names (each must be listed in `files`)."""
        return {"docstore.file": self.docstore.file} if self.docstore else {}


class DenseEncoder(_Section):
    file: RelPath = "query_encoder.onnx"
    max_length: StrictInt = Field(ge=1, le=MAX_LENGTH)
    pad_token: StrictStr | None = None
    dim: StrictInt | None = Field(None, ge=1)


class DenseIndex(_Section):
    nprobe: StrictInt | None = Field(None, ge=1, le=65536)
    nlist: StrictInt | None = Field(None, ge=1)


class DenseManifest(Manifest):
    """Kind "dense": the encoder file and max_length, the default nprobe."""

    encoder: DenseEncoder
    index: DenseIndex = Field(default_factory=DenseIndex)

    def named_files(self) -> dict[str, str]:
        return {**super().named_files(), "encoder.file": self.encoder.file}


class RetrievalSection(_Section):
    fusion: StrictStr = "rrf-max"
    depth: StrictInt = Field(1000, ge=1, le=100_000)


class MedicalManifest(Manifest):
    """Kind "medical": fusion and per-query depth of the retrieve-and-fuse step."""

    retrieval: RetrievalSection = Field(default_factory=RetrievalSection)


class MixingMember(_Section):
    dir: RelPath
    weight: float = Field(ge=0.0, le=MAX_WEIGHT)


class MixingSection(_Section):
    """A query mixture (`methods/disco/mixing.py`): each member's encoder folder and weight; `utterance`, when
    there, reads the current utterance alone (the document encoder); the others read the conversation."""

    members: list[MixingMember] = Field(min_length=1, max_length=16)
    utterance: MixingMember | None = None


class ConversationalManifest(Manifest):
    """Kind "sparse-conversational": without `mixing`, the one student in query_encoder/ (weight 1)."""

    mixing: MixingSection | None = None

    def named_files(self) -> dict[str, str]:
        out = super().named_files()
        if self.mixing is not None:
            parts = [*self.mixing.members, *([self.mixing.utterance] if self.mixing.utterance else [])]
            for i, m in enumerate(parts):
                for f in ("query_encoder.onnx", "tokenizer.json", "meta.json"):
                    out[f"mixing[{i}].dir/{f}"] = f"{m.dir}/{f}"
        return out


def _one_line(e: ValidationError) -> str:
    """The first error of a pydantic ValidationError as 'field: message' (+ how many more)."""
    errs = e.errors(include_url=False, include_input=False)
    first = errs[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return (f"{loc}: {msg}" if loc else msg) + more


def validate_manifest(raw: dict[str, Any], path: str | Path, model: type[Manifest] = Manifest) -> dict[str, Any]:
    """The manifest checked against `model`, as a plain dict (defaults filled); BundleError in one line."""
    version = raw.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {version!r} is not supported (this version reads "
                          f"{FORMAT_VERSION}); rebuild the bundle with `rkd export bundle`")
    try:
        return model.model_validate(raw).model_dump(mode="json")
    except ValidationError as e:
        raise BundleError(f"{path}: {_one_line(e)}") from None
