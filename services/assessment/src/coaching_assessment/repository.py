"""Every MongoDB query of the assessment service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coaching_shared.events import EventMessage, utc_now
from coaching_shared.membership import ROSTER, member_key
from coaching_shared.mongo import (
    Change,
    IndexSpec,
    apply_each_once,
    apply_once,
    keyed,
    keyed_under,
)
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from coaching_assessment.domain.instruments import InstrumentDefinition, builtin_instruments

INSTRUMENTS = "instruments"  # tenants' own instrument versions (built-ins live in the package)
PROGRAM_PLANS = "program_plans"  # which instruments a program assigns on enrolment
ASSIGNMENTS = "assignments"
RESPONSES = "responses"  # answer sheets in progress
RESULTS = "results"  # scored completions, with the answers they were scored from
NORMS = "norms"  # per tenant and instrument version: how often each scale score occurred

INDEXES = [
    IndexSpec(INSTRUMENTS, [("tenant_id", 1), ("instrument_id", 1), ("version", 1)],
              unique=True),
    IndexSpec(PROGRAM_PLANS, [("tenant_id", 1), ("program_id", 1)], unique=True),
    IndexSpec(ASSIGNMENTS, [("tenant_id", 1), ("client_id", 1), ("assignment_id", 1)],
              unique=True),
    IndexSpec(RESPONSES, [("tenant_id", 1), ("client_id", 1), ("assignment_id", 1)],
              unique=True),
    IndexSpec(RESULTS, [("tenant_id", 1), ("client_id", 1), ("assessment_id", 1)],
              unique=True),
    IndexSpec(RESULTS, [("tenant_id", 1), ("instrument_id", 1), ("instrument_version", 1)]),
    IndexSpec(NORMS, [("tenant_id", 1), ("instrument_id", 1), ("instrument_version", 1)],
              unique=True),
]
OUTBOX_COLLECTIONS = [ASSIGNMENTS, RESULTS]
PERSONAL_COLLECTIONS = [ASSIGNMENTS, RESPONSES, RESULTS]


def _norm_key(score: float) -> str:
    """A scale score as a field name (no dots or signs): 12.5 -> 's12_5', -1 -> 'sm1'."""
    return "s" + f"{round(score, 4):g}".replace("-", "m").replace(".", "_")


def _score_of(key: str) -> float:
    return float(key[1:].replace("m", "-").replace("_", "."))


class InstrumentNotFound(LookupError):
    pass


@dataclass(frozen=True)
class NewAssignment:
    """An assignment to create, the cause creating it and its AssessmentAssigned."""

    tenant_id: str
    client_id: str
    assignment_id: str
    cause_id: str
    fields: Mapping[str, Any]
    event: EventMessage


class AssessmentRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.instruments = db[INSTRUMENTS]
        self.program_plans = db[PROGRAM_PLANS]
        self.assignments = db[ASSIGNMENTS]
        self.responses = db[RESPONSES]
        self.results = db[RESULTS]
        self.norms = db[NORMS]
        # Published versions never change, so a parsed definition can be kept for good.
        self._definitions: dict[tuple[str, str, int], InstrumentDefinition] = {}

    # -- instruments -------------------------------------------------------------------

    async def definition(self, tenant_id: str, instrument_id: str,
                         version: int | None = None) -> InstrumentDefinition:
        """A built-in or the tenant's instrument, the given or the latest version."""
        builtin = builtin_instruments().get(instrument_id)
        if builtin is not None:
            if version in (None, builtin.version):
                return builtin
            raise InstrumentNotFound(f"{instrument_id} has no version {version}")
        if version is None:
            versions = await self.tenant_versions(tenant_id, instrument_id)
            if not versions:
                raise InstrumentNotFound(f"no instrument {instrument_id!r}")
            version = versions[-1]
        cache_key = (tenant_id, instrument_id, version)
        if cache_key not in self._definitions:
            stored = await self.instruments.find_one(
                {"tenant_id": tenant_id, "instrument_id": instrument_id, "version": version})
            if stored is None:
                raise InstrumentNotFound(f"{instrument_id} has no version {version}")
            self._definitions[cache_key] = InstrumentDefinition.model_validate(
                stored["definition"])
        return self._definitions[cache_key]

    async def tenant_versions(self, tenant_id: str, instrument_id: str) -> list[int]:
        cursor = self.instruments.find(
            {"tenant_id": tenant_id, "instrument_id": instrument_id}, {"version": 1})
        return sorted(document["version"] for document in await cursor.to_list())

    async def tenant_instruments(self, tenant_id: str) -> list[dict[str, Any]]:
        cursor = self.instruments.find({"tenant_id": tenant_id},
                                       {"_id": 0, "definition": 1, "uploaded_at": 1,
                                        "uploaded_by": 1}).sort([("instrument_id", 1),
                                                                 ("version", 1)])
        return await cursor.to_list()

    async def publish_instrument(self, tenant_id: str, definition: InstrumentDefinition,
                                 uploaded_by: str) -> tuple[bool, dict[str, Any]]:
        """Store a new version; (False, stored) if this id and version exist already."""
        document = {"tenant_id": tenant_id, "instrument_id": definition.instrument_id,
                    "version": definition.version, "definition": definition.model_dump(),
                    "uploaded_at": utc_now(), "uploaded_by": uploaded_by}
        try:
            await self.instruments.insert_one(document)
            return True, document
        except DuplicateKeyError:
            stored = await self.instruments.find_one(
                {"tenant_id": tenant_id, "instrument_id": definition.instrument_id,
                 "version": definition.version})
            return False, stored or document

    # -- program plans -----------------------------------------------------------------

    async def program_plan(self, tenant_id: str, program_id: str) -> list[str] | None:
        return (await self.program_plans_of([(tenant_id, program_id)])).get(
            (tenant_id, program_id))

    async def program_plans_of(self, programs: Iterable[tuple[str, str]]
                               ) -> dict[tuple[str, str], list[str]]:
        """The instrument plans of (tenant, program) pairs that have one, in one read."""
        ids = [keyed(tenant_id=tenant_id, program_id=program_id)["_id"]
               for tenant_id, program_id in set(programs)]
        plans = await self.program_plans.find({"_id": {"$in": ids}}).to_list()
        return {(plan["tenant_id"], plan["program_id"]): list(plan["instruments"])
                for plan in plans}

    async def set_program_plan(self, tenant_id: str, program_id: str, instruments: list[str],
                               changed_by: str) -> None:
        await self.program_plans.update_one(
            keyed(tenant_id=tenant_id, program_id=program_id),
            {"$set": {"instruments": instruments, "changed_by": changed_by,
                      "changed_at": utc_now()}}, upsert=True)

    async def is_enrolled(self, tenant_id: str, client_id: str) -> bool:
        return await self.db[ROSTER].find_one(member_key(tenant_id, client_id),
                                              {"_id": 1}) is not None

    # -- assignments and answer sheets -------------------------------------------------

    async def create_assignments(self, created: Sequence[NewAssignment]
                                 ) -> list[dict[str, Any] | None]:
        """Create assignments and their events once per cause, in one write for all; per
        assignment the document written, or None if it already was."""
        return await apply_each_once(self.assignments, [
            Change(keyed(tenant_id=new.tenant_id, client_id=new.client_id,
                         assignment_id=new.assignment_id), new.cause_id,
                   {"$setOnInsert": dict(new.fields)}, outbox=[new.event])
            for new in created])

    async def assignment(self, tenant_id: str, client_id: str,
                         assignment_id: str) -> dict[str, Any] | None:
        return await self.assignments.find_one(
            keyed(tenant_id=tenant_id, client_id=client_id, assignment_id=assignment_id))

    async def assignments_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        cursor = self.assignments.find(
            keyed_under(tenant_id=tenant_id, client_id=client_id)).sort("assigned_at", 1)
        return await cursor.to_list()

    async def answers(self, tenant_id: str, client_id: str, assignment_id: str,
                      ) -> dict[str, int]:
        sheet = await self.responses.find_one(
            keyed(tenant_id=tenant_id, client_id=client_id, assignment_id=assignment_id),
            {"answers": 1})
        return dict(sheet.get("answers", {})) if sheet else {}

    async def answers_of(self, tenant_id: str, client_id: str) -> dict[str, dict[str, int]]:
        """Every answer sheet of the client, by assignment."""
        cursor = self.responses.find(keyed_under(tenant_id=tenant_id, client_id=client_id),
                                     {"assignment_id": 1, "answers": 1})
        return {sheet["assignment_id"]: dict(sheet.get("answers", {}))
                for sheet in await cursor.to_list()}

    async def save_answers(self, tenant_id: str, client_id: str, assignment_id: str,
                           answers: Mapping[str, int]) -> dict[str, int]:
        """Merge answers into the sheet (item ids are checked against the instrument first,
        so they are safe field names); returns all answers saved so far."""
        update: dict[str, Any] = {"$set": {"updated_at": utc_now(),
                                           **{f"answers.{item}": value
                                              for item, value in answers.items()}}}
        sheet = await self.responses.find_one_and_update(
            keyed(tenant_id=tenant_id, client_id=client_id, assignment_id=assignment_id),
            update, upsert=True, return_document=ReturnDocument.AFTER)
        return dict(sheet.get("answers", {}))

    # -- results -----------------------------------------------------------------------

    async def record_result(self, tenant_id: str, client_id: str, assessment_id: str,
                            cause_id: str, fields: Mapping[str, Any],
                            outbox: list[EventMessage]) -> dict[str, Any] | None:
        """Store the result of a submission and its event; None if a result exists already.

        The key includes the submission's cause: a retry of the same submission fails the
        applied-cause guard, and a different submission of the same assignment finds no
        document with its cause and collides with the existing one on the unique index.
        Either way exactly one result, and one event, per assignment.
        """
        return await apply_once(
            self.results,
            {**keyed(tenant_id=tenant_id, client_id=client_id, assessment_id=assessment_id),
             "submission_cause": cause_id},
            cause_id, {"$set": dict(fields)}, outbox=outbox)

    async def result(self, tenant_id: str, client_id: str,
                     assessment_id: str) -> dict[str, Any] | None:
        return await self.results.find_one(
            keyed(tenant_id=tenant_id, client_id=client_id, assessment_id=assessment_id))

    async def results_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        cursor = self.results.find(
            keyed_under(tenant_id=tenant_id, client_id=client_id)).sort("completed_at", 1)
        return await cursor.to_list()

    async def answer_sheets(self, tenant_id: str, instrument_id: str,
                            version: int) -> list[dict[str, int]]:
        """The answers of every completed response to an instrument version in the tenant."""
        cursor = self.results.find({"tenant_id": tenant_id, "instrument_id": instrument_id,
                                    "instrument_version": version}, {"_id": 0, "answers": 1})
        return [dict(result["answers"]) for result in await cursor.to_list()]

    # -- norms -------------------------------------------------------------------------

    async def count_in_norms(self, tenant_id: str, instrument_id: str, version: int,
                             assessment_id: str, scores: Mapping[str, float]) -> None:
        """Add one completion's scale scores to the norm group, once per assessment."""
        increments = {f"scales.{scale_id}.{_norm_key(score)}": 1
                      for scale_id, score in scores.items()}
        await apply_once(
            self.norms, {"tenant_id": tenant_id, "instrument_id": instrument_id,
                         "instrument_version": version},
            assessment_id, {"$inc": {"completions": 1, **increments}})

    async def norm_distributions(self, tenant_id: str, instrument_id: str,
                                 version: int) -> dict[str, dict[float, int]]:
        """Per scale: how many completions had each score."""
        norms = await self.norms.find_one({"tenant_id": tenant_id,
                                           "instrument_id": instrument_id,
                                           "instrument_version": version}, {"scales": 1})
        if norms is None:
            return {}
        return {scale_id: {_score_of(key): count for key, count in counts.items()}
                for scale_id, counts in norms.get("scales", {}).items()}
