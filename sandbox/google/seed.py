"""The demo world's Google side: the CSAT and NPS forms with their answers, the usage
spreadsheet and an empty KPI spreadsheet (SPEC section 3).

Question ids are fixed so that the shipped ``config/google.yaml`` maps them; file ids are a
pure function of the world's seed.
"""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import datetime, timedelta
from typing import Any

from sandbox.google.cells import Cell, to_serial
from sandbox.google.forms import Form, Question, rfc3339
from sandbox.google.sheets_model import Sheet, Spreadsheet
from sandbox.world import World, podio_item_id

CSAT_QUESTIONS = (
    ("score", "5d0a7c31", "scale", "¿Qué tan satisfecho quedó con la atención recibida?", 1, 5),
    ("comment", "1e84b2f9", "paragraph", "¿Algo que quiera contarnos?", 0, 0),
    ("ticket", "7b3c9e12", "text", "Número de ticket", 0, 0),
    ("email", "29f4d6a0", "text", "Correo electrónico", 0, 0),
)
NPS_QUESTIONS = (
    ("score", "6a1f3b88", "scale",
     "¿Qué tan probable es que recomiende Saeko a otra escuela?", 0, 10),
    ("reason", "0c7d52e4", "paragraph", "¿Cuál es la razón principal de su calificación?", 0, 0),
    ("email", "4b9e1a07", "text", "Correo electrónico", 0, 0),
    ("client", "73e2c5d1", "text", "Escuela o institución", 0, 0),
)
# M4's monthly micro-survey (seed 001: «una breve evaluación de satisfacción (1-2
# preguntas)»): a score, an optional comment, and the email its prefilled link fills in.
MICRO_QUESTIONS = (
    ("score", "3c8e1f52", "scale", "Este mes, ¿qué tan satisfecho está con Saeko?", 1, 5),
    ("comment", "58b2d4e7", "paragraph", "¿Qué podríamos mejorar?", 0, 0),
    ("email", "2f6a9c13", "text", "Correo electrónico", 0, 0),
)
USAGE_TAB = "Uso semanal"
USAGE_HEADER = ("cliente_id", "cliente", "semana", "usuarios_activos", "inicios_sesion",
                "funciones_clave")
KPI_FIRST_TAB = "Hoja 1"  # a new es_MX spreadsheet's first tab


def file_id(seed: int, name: str) -> str:
    """A Drive-style file id (44 characters), stable for a given seed."""
    digest = hashlib.sha256(f"saeko-sandbox:{seed}:{name}".encode()).digest()
    return "1" + base64.urlsafe_b64encode(digest + digest[:8]).decode()[:43]


def _questions(spec: tuple[tuple[str, str, str, str, int, int], ...]) -> list[Question]:
    return [Question(key=key, question_id=qid, item_id=f"{int(qid, 16) ^ 0x5A5A5A5A:08x}",
                     title=title, kind=kind, low=low or (0 if kind != "scale" else 1),
                     high=high or 5, required=kind == "scale")
            for key, qid, kind, title, low, high in spec]


def response_record(form: Form, answers: dict[str, Any], when: datetime,
                    response_id: str) -> dict[str, Any]:
    """A FormResponse: unanswered questions are absent, every value is a string (§4.2)."""
    body: dict[str, Any] = {}
    for key, value in answers.items():
        if value is None or value == "":
            continue
        question = form.question(key)
        body[question.question_id] = {"questionId": question.question_id,
                                      "textAnswers": {"answers": [{"value": str(value)}]}}
    stamp = rfc3339(when)
    return {"responseId": response_id, "createTime": stamp, "lastSubmittedTime": stamp,
            "answers": body}


def response_id(seed: int, form_id: str, n: int) -> str:
    digest = hashlib.sha256(f"{seed}:{form_id}:{n}".encode()).digest()
    return "ACYDBN" + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:34]


def build_forms(world: World, editors: set[str]) -> dict[str, Form]:
    rng = random.Random(world.seed * 7919)
    schools = {s.key: s for s in world.schools}
    users_by_email = {u.email: u for u in world.users}
    clients = {c.key: c for c in world.clients}
    csat = Form(file_id(world.seed, "csat"), "Encuesta de satisfacción (CSAT)",
                _questions(CSAT_QUESTIONS), set(editors))
    nps = Form(file_id(world.seed, "nps"), "Encuesta NPS trimestral",
               _questions(NPS_QUESTIONS), set(editors))
    for answer in sorted(world.surveys, key=lambda a: (a.submitted_at, a.key)):
        when = answer.submitted_at + timedelta(microseconds=rng.randint(0, 999_999))
        if answer.kind == "csat" and answer.ticket_key is not None:
            form, answers = csat, {"score": answer.score, "comment": answer.comment,
                                   "ticket": podio_item_id("tickets", answer.ticket_key),
                                   "email": answer.email}
        elif answer.kind == "nps":
            user = users_by_email.get(answer.email)
            client = clients[schools[user.school_key].client_key] if user else None
            form, answers = nps, {"score": answer.score, "reason": answer.comment,
                                  "email": answer.email,
                                  "client": client.name if client else ""}
        else:
            continue
        rid = response_id(world.seed, form.form_id, len(form.responses) + 1)
        form.responses[rid] = response_record(form, answers, when, rid)
    micro = Form(file_id(world.seed, "micro"), "Micro-encuesta mensual",
                 _questions(MICRO_QUESTIONS), set(editors))
    return {csat.form_id: csat, nps.form_id: nps, micro.form_id: micro}


def build_spreadsheets(world: World, editors: set[str]) -> dict[str, Spreadsheet]:
    usage_id = file_id(world.seed, "usage")
    tab = Sheet(sheet_id=0, title=USAGE_TAB, index=0, frozen_rows=1)
    names = {c.key: c.name for c in world.clients}
    rows: list[list[Cell]] = [[Cell(h) for h in USAGE_HEADER]]
    for row in sorted(world.usage, key=lambda r: (r.week_start, r.client_key)):
        rows.append([Cell(podio_item_id("clientes", row.client_key)),
                     Cell(names[row.client_key]),
                     Cell(to_serial(row.week_start), fmt="DATE"),
                     Cell(row.active_users), Cell(row.logins), Cell(row.key_features)])
    tab.rows = max(len(rows), 2)
    tab.cols = len(USAGE_HEADER)
    tab.write(0, 0, rows)  # type: ignore[arg-type]
    usage = Spreadsheet(usage_id, "Uso de la plataforma por cliente (exportación semanal)",
                        [tab], set(editors), rng=random.Random(world.seed + 1))
    kpi_id = file_id(world.seed, "kpi")
    kpi = Spreadsheet(kpi_id, "Saeko · KPIs de postventa",
                      [Sheet(sheet_id=0, title=KPI_FIRST_TAB, index=0)], set(editors),
                      rng=random.Random(world.seed + 2))
    return {usage_id: usage, kpi_id: kpi}
