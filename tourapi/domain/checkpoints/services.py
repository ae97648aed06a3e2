"""Checkpoints: management by venue staff, signed poster URLs, QR images and PDF posters.

Access: staff see and change only their own venues; admins everything; operators (the night console)
may list checkpoints and print posters of every venue but not change them. Path-scoped endpoints
(``/v1/pois/{poi_id}/...``) are checked by the route guard; ``/v1/checkpoints/{id}/...`` here, after
looking up the checkpoint's venue.
"""

from __future__ import annotations

import re
from datetime import datetime

import anyio
import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.base import utcnow
from tourapi.db.models import Checkpoint, Poi
from tourapi.domain.checkpoints.errors import Refused
from tourapi.domain.checkpoints.schemas import CheckpointCreate, CheckpointOut, CheckpointPatch
from tourapi.errors import Conflict, NotFound, Unprocessable
from tourapi.i18n import check_texts, pick
from tourapi.qr import render, tokens
from tourapi.qr.landing import Landing
from tourapi.qr.posters import LAYOUTS, PosterSpec, render_posters
from tourapi.runtime import Runtime
from tourapi.security.principal import Principal
from tourapi.timeutil import TZ

_MANUAL_CODE_ATTEMPTS = 8


def checkpoint_url(runtime: Runtime, token: str) -> str:
    return f"{runtime.settings.public_base_url}/c/{token}"


def _slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return slug or "checkpoint"


def is_active(checkpoint: Checkpoint, poi: Poi | None) -> bool:
    return checkpoint.deleted_at is None and poi is not None and poi.deleted_at is None


class CheckpointService:
    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session

    # ---- output ----------------------------------------------------------------------------------------------

    def token(self, checkpoint: Checkpoint) -> str:
        return tokens.sign_with(self.runtime.keyring, checkpoint.id, checkpoint.version)

    def url(self, checkpoint: Checkpoint) -> str:
        return checkpoint_url(self.runtime, self.token(checkpoint))

    def out(self, checkpoint: Checkpoint, chain: tuple[str, ...], active: bool = True) -> CheckpointOut:
        label, lang = pick(checkpoint.label, chain)
        kid, _ = self.runtime.keyring.signer(tokens.PURPOSE)
        base = f"/v1/checkpoints/{checkpoint.id}"
        return CheckpointOut(
            id=checkpoint.id,
            poi_id=checkpoint.poi_id,
            slug=checkpoint.slug,
            label=label,
            lang=lang,
            i18n={"label": checkpoint.label},
            version=checkpoint.version,
            active=active and checkpoint.deleted_at is None,
            manual_code=tokens.display_manual_code(checkpoint.manual_code),
            url=self.url(checkpoint),
            kid=kid,
            require_proximity=checkpoint.require_proximity,
            proximity_margin_m=checkpoint.proximity_margin_m,
            qr_png=f"{base}/qr.png",
            qr_svg=f"{base}/qr.svg",
            posters_pdf=f"/v1/pois/{checkpoint.poi_id}/posters.pdf?checkpoint={checkpoint.id}",
            created_at=checkpoint.created_at,
            updated_at=checkpoint.updated_at,
            revoked_at=checkpoint.revoked_at,
        )

    # ---- reads -----------------------------------------------------------------------------------------------

    async def _poi(self, poi_id: str) -> Poi:
        poi = await self.session.get(Poi, poi_id)
        if poi is None or poi.deleted_at is not None:
            raise NotFound(f"no POI with id {poi_id!r}", field="poi_id")
        return poi

    async def list_for_poi(self, poi_id: str, include_inactive: bool = False) -> list[Checkpoint]:
        await self._poi(poi_id)
        stmt = select(Checkpoint).where(Checkpoint.poi_id == poi_id).order_by(Checkpoint.id)
        if not include_inactive:
            stmt = stmt.where(Checkpoint.deleted_at.is_(None))
        return list((await self.session.scalars(stmt)).all())

    async def get(self, principal: Principal, checkpoint_id: int, *, write: bool = False) -> Checkpoint:
        checkpoint = await self.session.get(Checkpoint, checkpoint_id)
        if checkpoint is None:
            raise NotFound(f"no checkpoint with id {checkpoint_id}", field="checkpoint_id")
        allowed = (
            principal.can_act_on_venue(checkpoint.poi_id)
            if write
            else principal.can_read_venue(checkpoint.poi_id)
        )
        if not allowed:
            raise Refused(
                "not-your-venue",
                f"checkpoint {checkpoint_id} belongs to venue {checkpoint.poi_id!r}, which this account "
                "may not " + ("change" if write else "see"),
                field="checkpoint_id",
            )
        return checkpoint

    # ---- writes ----------------------------------------------------------------------------------------------

    async def _fresh_manual_code(self) -> str:
        for _ in range(_MANUAL_CODE_ATTEMPTS):
            code = tokens.new_manual_code()
            if await self.session.scalar(select(Checkpoint.id).where(Checkpoint.manual_code == code)) is None:
                return code
        raise Conflict("could not draw an unused manual code; retry", field="manual_code")

    async def _free_slug(self, poi_id: str, wanted: str) -> str:
        taken = set(
            (await self.session.scalars(select(Checkpoint.slug).where(Checkpoint.poi_id == poi_id))).all()
        )
        slug, n = wanted, 2
        while slug in taken:
            suffix = f"-{n}"
            slug, n = wanted[: 64 - len(suffix)] + suffix, n + 1
        return slug

    async def create(self, poi_id: str, data: CheckpointCreate) -> Checkpoint:
        await self._poi(poi_id)
        label = check_texts(data.label, "label", max_length=80)
        with self.session.no_autoflush:
            if data.slug is not None:
                exists = await self.session.scalar(
                    select(Checkpoint.id).where(Checkpoint.poi_id == poi_id, Checkpoint.slug == data.slug)
                )
                if exists is not None:
                    raise Conflict(f"venue {poi_id!r} already has a checkpoint {data.slug!r}", field="slug")
                slug = data.slug
            else:
                slug = await self._free_slug(poi_id, _slugify(label["en"]))
            code = await self._fresh_manual_code()
        checkpoint = Checkpoint(
            poi_id=poi_id,
            slug=slug,
            label=label,
            version=1,
            manual_code=code,
            require_proximity=data.require_proximity,
            proximity_margin_m=data.proximity_margin_m,
        )
        self.session.add(checkpoint)
        await self._commit()
        return checkpoint

    async def patch(self, principal: Principal, checkpoint_id: int, data: CheckpointPatch) -> Checkpoint:
        checkpoint = await self.get(principal, checkpoint_id, write=True)
        self._active_or_refuse(checkpoint)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        if "label" in changes:
            changes["label"] = check_texts(changes["label"], "label", max_length=80)
        for key, value in changes.items():
            setattr(checkpoint, key, value)
        checkpoint.updated_at = utcnow()
        await self._commit()
        return checkpoint

    async def revoke(self, principal: Principal, checkpoint_id: int) -> Checkpoint:
        """Invalidate every printed poster of this checkpoint: new version, new manual code."""
        checkpoint = await self.get(principal, checkpoint_id, write=True)
        self._active_or_refuse(checkpoint)
        with self.session.no_autoflush:
            code = await self._fresh_manual_code()
        checkpoint.version += 1
        checkpoint.manual_code = code
        checkpoint.revoked_at = checkpoint.updated_at = utcnow()
        await self._commit()
        return checkpoint

    async def delete(self, principal: Principal, checkpoint_id: int) -> None:
        checkpoint = await self.get(principal, checkpoint_id, write=True)
        if checkpoint.deleted_at is None:
            checkpoint.deleted_at = checkpoint.updated_at = utcnow()
            await self._commit()

    async def upsert_fixture(self, poi_id: str, slug: str, data: CheckpointCreate) -> bool:
        """Insert or update by (venue, slug), keeping id, version and manual code (fixtures)."""
        await self._poi(poi_id)
        label = check_texts(data.label, "label", max_length=80)
        checkpoint = await self.session.scalar(
            select(Checkpoint).where(Checkpoint.poi_id == poi_id, Checkpoint.slug == slug)
        )
        fields = {
            "label": label,
            "require_proximity": data.require_proximity,
            "proximity_margin_m": data.proximity_margin_m,
        }
        if checkpoint is not None:
            if checkpoint.deleted_at is None and all(getattr(checkpoint, k) == v for k, v in fields.items()):
                return False
            for key, value in fields.items():
                setattr(checkpoint, key, value)
            checkpoint.deleted_at = None
            checkpoint.updated_at = utcnow()
        else:
            self.session.add(
                Checkpoint(
                    poi_id=poi_id, slug=slug, version=1, manual_code=await self._fresh_manual_code(), **fields
                )
            )
        await self._commit()
        return True

    def _active_or_refuse(self, checkpoint: Checkpoint) -> None:
        if checkpoint.deleted_at is not None:
            raise Refused("checkpoint-inactive", "this checkpoint was deleted", field="checkpoint_id")

    async def _commit(self) -> None:
        try:
            await self.session.commit()
        except IntegrityError:
            await self.session.rollback()
            raise Conflict("a concurrent change took the same slug or manual code; retry") from None

    # ---- resolving scanned codes -----------------------------------------------------------------------------

    async def _checkpoint_and_poi(self, checkpoint_id: int) -> tuple[Checkpoint | None, Poi | None]:
        row = (
            await self.session.execute(
                select(Checkpoint, Poi)
                .join(Poi, Poi.id == Checkpoint.poi_id)
                .where(Checkpoint.id == checkpoint_id)
            )
        ).first()
        return (row[0], row[1]) if row else (None, None)

    async def resolve_token(self, token: str, field: str = "token") -> tuple[Checkpoint, Poi]:
        """The checkpoint a scanned token names, if the token is genuine, current and the checkpoint active."""
        try:
            ref = tokens.verify(token, self.runtime.keyring)
        except tokens.TokenError as exc:
            raise Refused(exc.slug, exc.message, field=field) from None
        checkpoint, poi = await self._checkpoint_and_poi(ref.checkpoint_id)
        if checkpoint is None or poi is None:
            raise Refused(
                "checkpoint-not-found", "the code names a checkpoint that does not exist", field=field
            )
        if not is_active(checkpoint, poi):
            raise Refused("checkpoint-inactive", "this check-in point is no longer in use", field=field)
        if ref.version != checkpoint.version:
            raise Refused(
                "checkpoint-revoked", "this poster was replaced; ask staff for the current one", field=field
            )
        return checkpoint, poi

    async def resolve_manual_code(self, code: str, field: str = "manual_code") -> tuple[Checkpoint, Poi]:
        normal = tokens.normalise_manual_code(code)
        row = None
        if normal is not None:
            row = (
                await self.session.execute(
                    select(Checkpoint, Poi)
                    .join(Poi, Poi.id == Checkpoint.poi_id)
                    .where(Checkpoint.manual_code == normal)
                )
            ).first()
        if row is None:
            raise Refused(
                "unknown-manual-code",
                "no check-in point has this code; check the code printed under the QR code",
                field=field,
            )
        if not is_active(row[0], row[1]):
            raise Refused("checkpoint-inactive", "this check-in point is no longer in use", field=field)
        return row[0], row[1]

    async def landing(self, token: str) -> Landing:
        try:
            checkpoint, poi = await self.resolve_token(token)
        except Refused as exc:
            return Landing(token=token, valid=False, reason=exc.slug)
        return Landing(
            token=token,
            valid=True,
            venue_zh=poi.name.get("zh-Hans", ""),
            venue_en=poi.name.get("en", ""),
            label_zh=checkpoint.label.get("zh-Hans", ""),
            label_en=checkpoint.label.get("en", ""),
            manual_code=tokens.display_manual_code(checkpoint.manual_code),
        )

    # ---- QR images and posters -------------------------------------------------------------------------------

    async def qr_png(self, principal: Principal, checkpoint_id: int, size: int) -> bytes:
        checkpoint = await self.get(principal, checkpoint_id)
        self._active_or_refuse(checkpoint)
        return await anyio.to_thread.run_sync(render.png, self.url(checkpoint), size)

    async def qr_svg(self, principal: Principal, checkpoint_id: int) -> bytes:
        checkpoint = await self.get(principal, checkpoint_id)
        self._active_or_refuse(checkpoint)
        return await anyio.to_thread.run_sync(render.svg, self.url(checkpoint))

    async def posters(self, poi_id: str, layout: int, checkpoint_id: int | None = None) -> bytes:
        if layout not in LAYOUTS:
            raise Unprocessable(f"layout must be one of {sorted(LAYOUTS)}", field="layout")
        poi = await self._poi(poi_id)
        checkpoints = await self.list_for_poi(poi_id)
        if checkpoint_id is not None:
            checkpoints = [c for c in checkpoints if c.id == checkpoint_id]
            if not checkpoints:
                raise NotFound(
                    f"venue {poi_id!r} has no active checkpoint {checkpoint_id}", field="checkpoint"
                )
        if not checkpoints:
            raise NotFound(f"venue {poi_id!r} has no active checkpoints; create one first", field="poi_id")
        kid, _ = self.runtime.keyring.signer(tokens.PURPOSE)
        printed = datetime.now(TZ).strftime("%Y-%m-%d")
        host = self.runtime.settings.public_base_url.split("://", 1)[-1]
        specs = [
            PosterSpec(
                venue_zh=poi.name.get("zh-Hans", ""),
                venue_en=poi.name.get("en", ""),
                label_zh=c.label.get("zh-Hans", ""),
                label_en=c.label.get("en", ""),
                url=self.url(c),
                manual_code=tokens.display_manual_code(c.manual_code),
                footer=f"{poi.id} · #{c.id} {c.slug} · v{c.version} · key {kid} · {printed} · {host}",
            )
            for c in checkpoints
        ]
        title = f"{poi.name.get('en', poi.id)}: check-in posters"
        return await anyio.to_thread.run_sync(render_posters, specs, layout, title)
