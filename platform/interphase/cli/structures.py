"""``interphase structures``: the stored structures, with the ids ``jobs create`` takes."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from interphase.cli.arguments import ArgumentError, check_campaign
from interphase.cli.common import USER_ERRORS, console, fail, open_database

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.orm import Session

app = typer.Typer(
    help="Stored structures: list them with their ids, campaigns and labels.",
    no_args_is_help=True,
)


def _campaign_id(session: Session, campaign: str) -> int:
    """A campaign by name, or by id (digits)."""
    from sqlalchemy import select

    from interphase.db.models import Campaign

    check_campaign(campaign)
    by = Campaign.id == int(campaign) if campaign.isdigit() else Campaign.name == campaign
    found = session.scalar(select(Campaign.id).where(by))
    if found is None:
        raise ArgumentError(f"no campaign {campaign!r}; `interphase campaign list` lists them")
    return int(found)


def _level_id(session: Session, level: str) -> int:
    from sqlalchemy import select

    from interphase.db.models import LevelOfTheory

    found = session.scalar(select(LevelOfTheory.id).where(LevelOfTheory.name == level))
    if found is None:
        known = session.scalars(select(LevelOfTheory.name).order_by(LevelOfTheory.name)).all()
        raise ArgumentError(
            f"no level of theory {level!r} in the database; levels: {', '.join(known) or 'none'}"
        )
    return int(found)


def _require_generator(session: Session, generator: str) -> None:
    from sqlalchemy import select

    from interphase.db.models import Structure

    if session.scalar(select(Structure.id).where(Structure.generator == generator).limit(1)):
        return
    known = session.scalars(select(Structure.generator).distinct().order_by(Structure.generator))
    raise ArgumentError(
        f"no structures made by generator {generator!r}; generators: "
        f"{', '.join(known) or 'none (generate or import structures first)'}"
    )


def _selection(
    session: Session, generator: str | None, campaign: str | None, level: str | None
) -> Select[int]:
    """Ids of the structures that pass every filter given."""
    from sqlalchemy import select

    from interphase.db.models import CampaignStructure, Label, Structure

    query = select(Structure.id)
    if generator is not None:
        _require_generator(session, generator)
        query = query.where(Structure.generator == generator)
    if campaign is not None:
        members = select(CampaignStructure.structure_id).where(
            CampaignStructure.campaign_id == _campaign_id(session, campaign)
        )
        query = query.where(Structure.id.in_(members))
    if level is not None:
        labeled = select(Label.structure_id).where(Label.level_id == _level_id(session, level))
        query = query.where(Structure.id.in_(labeled))
    return query


def _names_by_structure(session: Session, query: Select[int, str]) -> dict[int, list[str]]:
    names: dict[int, set[str]] = defaultdict(set)
    for structure_id, name in session.execute(query):
        names[structure_id].add(name)
    return {key: sorted(values) for key, values in names.items()}


@app.command("list")
def list_structures(
    generator: Annotated[
        str | None, typer.Option(help="Only structures made by this generator.")
    ] = None,
    campaign: Annotated[
        str | None, typer.Option(help="Only structures of this campaign (name or id).")
    ] = None,
    level: Annotated[
        str | None, typer.Option(help="Only structures with a label at this level of theory.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Show at most this many (the newest).")
    ] = 100,
) -> None:
    """Structures, newest first: id, formula, atoms, generator, campaigns and label levels."""
    from sqlalchemy import func, select

    from interphase.db.models import Campaign, CampaignStructure, Label, LevelOfTheory, Structure
    from interphase.db.session import transaction

    try:
        open_database(create=False)
        with transaction(read_only=True) as session:
            selected = _selection(session, generator, campaign, level)
            matching = session.scalar(select(func.count()).select_from(selected.subquery())) or 0
            page = selected.order_by(Structure.id.desc()).limit(limit).subquery()
            rows = session.execute(
                select(Structure.id, Structure.formula, Structure.n_atoms, Structure.generator)
                .join(page, page.c.id == Structure.id)
                .order_by(Structure.id.desc())
            ).all()
            campaigns = _names_by_structure(
                session,
                select(CampaignStructure.structure_id, Campaign.name)
                .join(page, page.c.id == CampaignStructure.structure_id)
                .join(Campaign, CampaignStructure.campaign_id == Campaign.id),
            )
            levels = _names_by_structure(
                session,
                select(Label.structure_id, LevelOfTheory.name)
                .join(page, page.c.id == Label.structure_id)
                .join(LevelOfTheory, Label.level_id == LevelOfTheory.id),
            )
    except USER_ERRORS as error:
        fail(error)
    table = Table(
        "id", "formula", "atoms", "generator", Column("campaigns", overflow="fold"),
        Column("labels", overflow="fold"),
    )  # fmt: skip
    for row in rows:
        table.add_row(
            str(row.id), row.formula, str(row.n_atoms), row.generator,
            ", ".join(campaigns.get(row.id, [])), ", ".join(levels.get(row.id, [])),
        )  # fmt: skip
    console.print(table)
    if matching > len(rows):
        console.print(f"the newest {len(rows):,} of {matching:,} matching structures; --limit N")
