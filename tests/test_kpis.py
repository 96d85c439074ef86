"""Every KPI of SPEC §11 (config/kpis.yaml, store/kpis) against values computed by hand on a
small fixture written into the store, on SQLite and PostgreSQL. The arithmetic is in the
comments; no expected value comes from the code under test.

The fixture is November 2026 in Tijuana (PST, UTC−8 from 1 November), «today» is Monday
30 November at 12:00 local. Five clients: C1 TOP/Tijuana/Ana, C2 Estándar/Tijuana/Ana,
C3 Estándar/Tecate/Beto (went to Baja on 10 Nov), C4 Estándar/Tecate/Beto (signed 15 Nov),
C5 TOP/Tecate/Beto (Baja since September).
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT
from store import kpis
from store.db import Database
from store.models import (
    ActionLedger,
    ChangeEvent,
    CheckIn,
    Client,
    Contract,
    Meeting,
    Staff,
    SurveyResponse,
    Task,
    Ticket,
    UsageMetric,
)

NOW = datetime(2026, 11, 30, 20, 0)  # Monday 30 Nov 2026, 12:00 in Tijuana
NOV = (date(2026, 11, 1), date(2026, 11, 30))


@pytest.fixture
def config(tmp_path: Path) -> kpis.KpiConfig:
    """The shipped kpis.yaml, and a rules folder with 3 active rules (one off)."""
    folder = tmp_path / "config"
    (folder / "rules").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "config" / "kpis.yaml", folder / "kpis.yaml")
    (folder / "rules" / "a.yaml").write_text("id: a\nactiva: true\n", encoding="utf-8")
    (folder / "rules" / "b.yaml").write_text("id: b\nactiva: false\n", encoding="utf-8")
    (folder / "rules" / "c.yaml").write_text("- id: c1\n- id: c2\n  activa: true\n",
                                             encoding="utf-8")
    return kpis.load_config(folder)


def _synced(model: Any, source: str, source_id: str, **values: Any) -> Any:
    return model(source=source, source_id=source_id, **values)


def fill(db: Database) -> dict[str, int]:
    """Write the fixture; returns ids by name."""
    ids: dict[str, int] = {}
    with db.session() as s:
        staff = {
            "ana": Staff(key="am-ana", name="Ana Ruiz", email="ana@x.test", role="am",
                         region="Tijuana"),
            "beto": Staff(key="am-beto", name="Beto Lara", email="beto@x.test", role="am",
                          region="Tecate"),
            "karla": Staff(key="agente-karla", name="Karla Nava", email="k@x.test",
                           role="agent"),
            "irene": Staff(key="csm-irene", name="Irene Cordero", email="i@x.test", role="csm"),
        }
        s.add_all(staff.values())
        s.flush()
        ids.update({k: v.id for k, v in staff.items()})
        full = {"product": "Saeko", "decision_maker": "Directora"}
        clients = {
            "c1": _synced(Client, "podio", "101", name="Colegio Uno", segment="TOP",
                          region="Tijuana", am_id=ids["ana"], status="Activo",
                          signed_on=date(2025, 1, 1),
                          source_updated_at=datetime(2026, 11, 20, 18), **full),
            "c2": _synced(Client, "podio", "102", name="Colegio Dos", segment="Estándar",
                          region="Tijuana", am_id=ids["ana"], status="Activo",
                          signed_on=date(2025, 1, 1), product="Saeko",
                          source_updated_at=datetime(2026, 11, 25, 18)),
            "c3": _synced(Client, "podio", "103", name="Colegio Tres", segment="Estándar",
                          region="Tecate", am_id=ids["beto"], status="Baja",
                          signed_on=date(2024, 3, 1),
                          source_updated_at=datetime(2026, 11, 10, 18), **full),
            "c4": _synced(Client, "podio", "104", name="Colegio Cuatro", segment="Estándar",
                          region="Tecate", am_id=ids["beto"], status="Activo",
                          signed_on=date(2026, 11, 15),
                          source_updated_at=datetime(2026, 10, 1, 18), **full),
            "c5": _synced(Client, "podio", "105", name="Colegio Cinco", segment="TOP",
                          region="Tecate", am_id=ids["beto"], status="Baja",
                          signed_on=date(2023, 1, 1),
                          source_updated_at=datetime(2026, 9, 1, 18), **full),
        }
        s.add_all(clients.values())
        s.flush()
        ids.update({k: v.id for k, v in clients.items()})
        for client, at, old, new in [
                ("c1", datetime(2025, 1, 1), None, "Activo"),
                ("c3", datetime(2026, 11, 10, 18), "Activo", "Baja"),
                ("c5", datetime(2026, 9, 1, 18), "Activo", "Baja")]:
            s.add(ChangeEvent(entity="cliente", entity_id=ids[client], kind="updated",
                              changes={"status": [old, new]}, changed_at=at, seen_at=at))

        def ticket(key: str, client: str, responsible: str, **v: Any) -> Ticket:
            return _synced(Ticket, "podio", key, client_id=ids[client], am_id=None,
                           responsible_id=ids[responsible], title=f"Ticket {key}", **v)

        d = datetime
        tickets = {
            "t1": ticket("201", "c1", "karla", priority="Alta", module="Cobranza",
                         opened_at=d(2026, 11, 3, 17), first_response_at=d(2026, 11, 3, 18),
                         first_response_hours=1.0, closed_at=d(2026, 11, 4, 18),
                         close_hours=10.0, status="Cerrado"),
            "t2": ticket("202", "c1", "karla", priority="Media", module="Cobranza",
                         opened_at=d(2026, 11, 10, 17), first_response_at=d(2026, 11, 10, 20),
                         first_response_hours=3.0, closed_at=d(2026, 11, 12, 20),
                         close_hours=20.0, status="Cerrado"),
            "t3": ticket("203", "c2", "karla", priority="Crítica", module="Acceso",
                         opened_at=d(2026, 11, 15, 17), first_response_at=d(2026, 11, 15, 19),
                         first_response_hours=2.0, closed_at=d(2026, 11, 17, 19),
                         close_hours=12.0, jira_key="SAE-1", status="Cerrado"),
            "t4": ticket("204", "c2", "karla", priority="Baja", module="Acceso",
                         opened_at=d(2026, 11, 20, 17), first_response_at=d(2026, 11, 20, 17, 30),
                         first_response_hours=0.5, status="En atención"),
            "t5": ticket("205", "c3", "karla", priority="Baja", module="Cobranza",
                         opened_at=d(2026, 10, 25, 17), first_response_at=d(2026, 10, 25, 21),
                         first_response_hours=4.0, closed_at=d(2026, 11, 2, 18),
                         close_hours=30.0, status="Cerrado"),
            "t6": ticket("206", "c1", "karla", priority="Media", module="Cobranza",
                         opened_at=d(2026, 11, 25, 17), status="Nuevo"),
            "t7": ticket("207", "c4", "irene", priority=None, module=None,
                         opened_at=d(2026, 11, 26, 17), first_response_at=d(2026, 11, 26, 18, 30),
                         first_response_hours=1.5, closed_at=d(2026, 11, 27, 18),
                         close_hours=4.0, status="Cerrado"),
        }
        s.add_all(tickets.values())
        s.flush()
        ids.update({k: v.id for k, v in tickets.items()})
        s.add(ChangeEvent(entity="ticket", entity_id=ids["t2"], kind="updated",
                          changes={"status": ["En atención", "Escalado"]},
                          changed_at=d(2026, 11, 10, 21), seen_at=d(2026, 11, 10, 21)))
        s.add(ChangeEvent(entity="ticket", entity_id=ids["t1"], kind="updated",
                          changes={"status": ["Nuevo", "En atención"]},
                          changed_at=d(2026, 11, 3, 18), seen_at=d(2026, 11, 3, 18)))

        answers: list[tuple[str, str | None, str | None, datetime, int]] = [
            # (kind, client, ticket, submitted, score)
            ("nps", "c1", None, d(2026, 11, 5, 18), 10), ("nps", "c1", None, d(2026, 11, 6, 18), 9),
            ("nps", "c2", None, d(2026, 11, 7, 18), 8), ("nps", "c2", None, d(2026, 11, 8, 18), 7),
            ("nps", "c3", None, d(2026, 11, 9, 18), 3),
            # 1 Dec 05:00 UTC is 30 Nov 21:00 in Tijuana: November's.
            ("nps", "c1", None, d(2026, 12, 1, 5), 10),
            # 1 Dec 09:00 UTC is 1 Dec 01:00 in Tijuana: not November's.
            ("nps", "c2", None, d(2026, 12, 1, 9), 0),
            # October: only passives.
            ("nps", "c1", None, d(2026, 10, 5, 18), 7), ("nps", "c2", None, d(2026, 10, 6, 18), 8),
            ("csat", None, "t1", d(2026, 11, 4, 19), 5), ("csat", None, "t2", d(2026, 11, 12, 21), 4),
            ("csat", None, "t3", d(2026, 11, 17, 20), 4), ("csat", None, "t7", d(2026, 11, 27, 19), 3),
            ("csat", None, "t1", d(2026, 11, 5, 19), 1),
        ]
        for n, (kind, owner, tk, at, score) in enumerate(answers):
            s.add(_synced(SurveyResponse, "forms", f"r{n}", kind=kind, submitted_at=at,
                          score=float(score), client_id=ids[owner] if owner else None,
                          ticket_id=ids[tk] if tk else None))

        contracts = [  # (source id, client, kind, starts, ends, amount, status)
            ("k1", "c1", "Nuevo", date(2025, 11, 11), date(2026, 11, 10), 900, "Renovado"),
            ("k2", "c2", "Nuevo", date(2025, 11, 20), date(2026, 11, 20), 1000, "Vigente"),
            ("k3", "c2", "Renovación", date(2026, 11, 21), date(2027, 11, 20), 1200, "Vigente"),
            ("k4", "c3", "Nuevo", date(2025, 11, 6), date(2026, 11, 5), 800, "Cancelado"),
            ("k5", "c4", "Nuevo", date(2025, 12, 16), date(2026, 12, 15), 500, "Vigente"),
            ("k6", "c1", "Nuevo", date(2026, 11, 12), date(2027, 11, 11), 300, "Vigente"),
            ("k7", "c1", "Nuevo", date(2026, 1, 1), date(2026, 12, 31), 700, "Vigente"),
        ]
        for sid, client, kind, starts, ends, amount, status in contracts:
            s.add(_synced(Contract, "podio", sid, client_id=ids[client], kind=kind,
                          starts_on=starts, ends_on=ends, amount=Decimal(amount), status=status))

        meetings = [("m1", "c1", d(2026, 11, 5, 18), "confirmed"),
                    ("m2", "c1", d(2026, 11, 19, 18), "confirmed"),
                    ("m3", "c1", d(2026, 11, 12, 18), "cancelled"),
                    ("m4", "c2", d(2026, 11, 8, 18), "confirmed")]
        for sid, client, at, status in meetings:
            s.add(_synced(Meeting, "calendar", sid, kind="check-in", client_id=ids[client],
                          staff_id=ids["ana"], starts_at=at, status=status))
        check_ins = [("s1", "c1", d(2026, 11, 5, 19), "Realizado"),
                     ("s2", "c1", d(2026, 11, 19, 19), "Realizado"),
                     ("s3", "c1", d(2026, 11, 22, 19), None),
                     ("s4", "c2", d(2026, 11, 8, 19), "Reprogramado"),
                     ("s5", "c4", d(2026, 11, 20, 19), "Realizado")]
        for sid, client, at, outcome in check_ins:
            s.add(_synced(CheckIn, "podio", sid, client_id=ids[client], happened_at=at,
                          kind="Check-in", outcome=outcome))

        usage = [("c1", date(2026, 11, w), 2) for w in (2, 9, 16, 23)] + [
            ("c2", date(2026, 11, 2), 3), ("c2", date(2026, 11, 9), 0)]
        for client, week, key_features in usage:
            s.add(_synced(UsageMetric, "sheets", f"{client}:{week}", client_id=ids[client],
                          week_start=week, key_features=key_features, active_users=5))

        tasks = [  # (task id, due, completed (UTC) or None)
            ("ta", date(2026, 11, 10), d(2026, 11, 9, 20)),
            ("tb", date(2026, 11, 12), d(2026, 11, 14, 20)),
            ("tc", date(2026, 11, 20), None),
            # 16 Nov 05:00 UTC is 15 Nov 21:00 in Tijuana: on its due day.
            ("td", date(2026, 11, 15), d(2026, 11, 16, 5)),
            ("te", date(2026, 12, 5), None),
            ("tf", date(2026, 11, 30), None),
            ("9001", date(2026, 11, 12), d(2026, 11, 11, 20)),
            ("9002", date(2026, 11, 18), d(2026, 11, 20, 20)),
        ]
        for sid, due, completed in tasks:
            s.add(_synced(Task, "podio", sid, text=f"Tarea {sid}", due_on=due,
                          completed_at=completed, responsible_id=ids["ana"],
                          status="completed" if completed else "active"))
        for n, (client, ref) in enumerate([("c1", "tarea 9001"), ("c2", "tarea 9002"),
                                           ("c1", "tarea 9003")]):
            s.add(ActionLedger(idempotency_key=f"m1:{n}", rule_id="m1-salud-cliente",
                               action="podio.tarea", status="done", external_ref=ref,
                               payload={"match": {"entity_id": ids[client]}},
                               created_at=d(2026, 11, 5 + n, 18)))
    return ids


def _by(values: list[kpis.KpiValue], dimension: str = "total") -> dict[tuple[str, str], Any]:
    return {(v.kpi, v.label): v for v in values if v.dimension == dimension}


def _value(values: list[kpis.KpiValue], kpi: str, label: str = "Todos",
           dimension: str = "total") -> float | None:
    return _by(values, dimension)[(kpi, label)].value


def test_every_kpi_of_november_against_hand_computed_values(db: Database,
                                                            config: kpis.KpiConfig) -> None:
    fill(db)
    with db.session() as s:
        values = kpis.compute(s, *NOV, by=("total", "am", "segmento", "equipo", "cliente"),
                              config=config, now=NOW)
    total = _by(values)
    assert {k for k, _ in total} == {d.id for d in config.kpis}, "every KPI has a total row"

    # NPS: 10, 9, 8, 7, 3 and the 30 Nov 21:00 local 10 → P=3, D=1, n=6: (3−1)/6 = 33.3333.
    assert (total[("nps", "Todos")].value, total[("nps", "Todos")].n) == (33.3333, 6)
    # TOP (C1): 10, 9, 10 → 100; Estándar (C2, C3): 8, 7, 3 → (0−1)/3 = −33.3333.
    assert _value(values, "nps", "TOP", "segmento") == 100.0
    assert _value(values, "nps", "Estándar", "segmento") == -33.3333
    # CSAT: 5, 4, 4, 3, 1 → 3 of 5 are 4–5 = 60 % (target 90: not met); mean 17/5 = 3.4.
    assert total[("csat", "Todos")].value == 60.0 and total[("csat", "Todos")].met is False
    assert total[("csat", "Todos")].target == 90
    assert _value(values, "csat_promedio") == 3.4
    # By team (the ticket's responsible): Mesa (Karla) 5, 4, 4, 1 → 75 %; CS (Irene) 3 → 0 %.
    assert _value(values, "csat", "Mesa de atención", "equipo") == 75.0
    assert _value(values, "csat", "Customer Success", "equipo") == 0.0

    # First responses in November: T1 1.0, T2 3.0, T3 2.0, T4 0.5, T7 1.5 (T5's was in Oct).
    # Mean 8.0/5 = 1.6 h (target < 2 h: met); median of 0.5 1 1.5 2 3 = 1.5;
    # p90: rank (5−1)·0.9 = 3.6 → 2.0 + 0.6·(3.0 − 2.0) = 2.6.
    first = total[("primera_respuesta_promedio", "Todos")]
    assert (first.value, first.n, first.met) == (1.6, 5, True)
    assert _value(values, "primera_respuesta_mediana") == 1.5
    assert _value(values, "primera_respuesta_p90") == 2.6
    # Ana's (C1, C2): 1, 3, 2, 0.5 → median of an even count: (1 + 2)/2 = 1.5.
    assert _value(values, "primera_respuesta_mediana", "Ana Ruiz", "am") == 1.5
    # Closed in November: T1 10, T2 20, T3 12, T5 30, T7 4 → mean 76/5 = 15.2, median 12.
    assert _value(values, "cierre_promedio") == 15.2
    assert _value(values, "cierre_mediana") == 12.0
    # Beto's (C3, C4): 30 and 4 → median (4 + 30)/2 = 17.
    assert _value(values, "cierre_mediana", "Beto Lara", "am") == 17.0
    # SLA: T1 (Alta, 1 ≤ 2, 10 ≤ 16) yes; T2 (3 > 2) no; T3 (Crítica, 12 > 8) no;
    # T5 (4 > 2) no; T7 (no priority: 1.5 ≤ 2, 4 ≤ 24) yes → 2/5 = 40 %.
    assert _value(values, "sla") == 40.0
    # FCR: T1 yes, T2 no («Escalado» in its history), T3 no (Jira), T5 yes, T7 yes → 60 %.
    assert _value(values, "fcr") == 60.0

    # Churn: active on 1 Nov = C1, C2, C3 (C4 signed 15 Nov, C5 Baja since Sept);
    # C3 went to Baja on 10 Nov → 1/3 = 33.3333 %; retention 66.6667 % (target 95: not met).
    assert (_value(values, "churn"), total[("churn", "Todos")].n) == (33.3333, 3)
    assert total[("retencion", "Todos")].value == 66.6667
    assert total[("retencion", "Todos")].met is False
    assert _value(values, "churn", "Ana Ruiz", "am") == 0.0
    assert _value(values, "churn", "Beto Lara", "am") == 100.0
    # Renewals: due by 30 Nov: K1 (Renovado) yes, K2 (renewed by K3) yes, K4 (Cancelado)
    # no; K5 falls due in December → 2/3 = 66.6667 %.
    assert (_value(values, "renovaciones"), total[("renovaciones", "Todos")].n) == (66.6667, 3)
    # Expansion: C1 (K6 new beside the live K7), C2 (K3 renews K2 for 1,200 > 1,000) → 2.
    assert _value(values, "expansion") == 2.0
    # At-risk alerts: task 9001 done 11 Nov ≤ due 12 Nov yes; 9002 done 20 Nov > 18 Nov
    # no; 9003 is not in the model (left out) → 1/2 = 50 %.
    assert (_value(values, "riesgo_a_tiempo"), total[("riesgo_a_tiempo", "Todos")].n) == (50.0, 2)
    # AM load (today): Ana C1 TOP 2 + C2 1 = 3; Beto C4 1 (C3, C5 Baja) → mean 2.
    assert _value(values, "carga_am") == 2.0
    assert _value(values, "carga_am", "Ana Ruiz", "am") == 3.0
    # Check-ins: C1 planned 2 (one cancelled) done 3 → 2; C2 planned 1, its only one
    # «Reprogramado» → 0; C4 done without a plan → left out. (2 + 0)/3 = 66.6667 %.
    assert (_value(values, "checkins"), total[("checkins", "Todos")].n) == (66.6667, 3)
    assert _value(values, "checkins", "Colegio Uno", "cliente") == 100.0
    assert _value(values, "checkins", "Colegio Dos", "cliente") == 0.0
    # Tickets per account: opened in Nov T1 T2 T3 T4 T6 T7 = 6 ÷ live C1 C2 C4 = 2.
    assert _value(values, "tickets_por_cuenta") == 2.0
    # Reincidence: T2 (T1, 7 days before), T4 (T3), T6 (T2, T1) repeat; T1, T3 do not;
    # T7 has no module → 3/5 = 60 %.
    assert (_value(values, "reincidencia"), total[("reincidencia", "Todos")].n) == (60.0, 5)
    # Active use: C1 key features every week; C2 had a 0 week; C4 no rows → 1/3.
    assert _value(values, "uso_activo") == 33.3333
    # CRM upkeep (today): C1 complete, edited 20 Nov; C2 no decision maker; C4 edited
    # 1 Oct (> 30 days) → 1/3.
    assert _value(values, "crm_al_dia") == 33.3333
    # Tasks due in Nov (by 30 Nov, still open ones due today left out): ta yes, tb no
    # (late), tc no (open, overdue), td yes (15 Nov 21:00 local), 9001 yes, 9002 no → 50 %.
    tasks = total[("tareas_a_tiempo", "Todos")]
    assert (tasks.value, tasks.n, tasks.met) == (50.0, 6, False)
    # Automated processes: a, c1, c2 active; b off → 3.
    assert _value(values, "procesos_automatizados") == 3.0


def test_edge_cases_empty_period_passives_only_and_local_days(db: Database,
                                                               config: kpis.KpiConfig) -> None:
    fill(db)
    with db.session() as s:
        june = kpis.compute(s, date(2026, 6, 1), date(2026, 6, 30), config=config, now=NOW)
        october = kpis.series(s, "mes", date(2026, 10, 1), date(2026, 10, 31), config=config,
                              now=NOW)
        last_day = kpis.series(s, "dia", date(2026, 11, 30), date(2026, 11, 30),
                               config=config, now=NOW)
        week = kpis.series(s, "semana", date(2026, 11, 16), date(2026, 11, 22),
                           config=config, now=NOW, kpis=["primera_respuesta_promedio"])
    empty = _by(june)
    # Nothing happened in June: empty values (not 0), n = 0; check-ins empty, not 0 % or 100 %.
    for kpi in ("nps", "csat", "primera_respuesta_promedio", "sla", "checkins", "renovaciones"):
        assert (empty[(kpi, "Todos")].value, empty[(kpi, "Todos")].n) == (None, 0), kpi
        assert empty[(kpi, "Todos")].met is None
    # Snapshot KPIs are not computed for a period that does not hold today.
    assert ("carga_am", "Todos") not in empty
    # October: NPS 7 and 8 only (passives) → 0 − 0 = 0, n = 2.
    nps = _by(october)[("nps", "Todos")]
    assert (nps.value, nps.n, nps.period) == (0.0, 2, "2026-10")
    # 30 November (local): only the 21:00-local 10 → NPS 100 with n = 1.
    assert _by(last_day)[("nps", "Todos")].value == 100.0
    # ISO week 47 (16–22 Nov): T4's 0.5 h (T3's first response was 15 Nov).
    (value,) = week
    assert (value.period, value.start, value.value, value.n) == ("2026-S47", date(2026, 11, 16),
                                                                  0.5, 1)


def test_unknown_dimension_or_kpi_is_a_clear_error(db: Database,
                                                   config: kpis.KpiConfig) -> None:
    with db.session() as s, pytest.raises(ValueError, match="dimensión desconocida"):
        kpis.compute(s, *NOV, by="escuela", config=config)
    with db.session() as s, pytest.raises(ValueError, match="KPI desconocido"):
        kpis.compute(s, *NOV, config=config, kpis=["nps2"])


def test_the_status_page_shows_the_month_against_targets(db: Database, tmp_path: Path,
                                                         config: kpis.KpiConfig) -> None:
    from core.settings import load_settings
    from jobs.status import render, snapshot

    fill(db)
    settings = load_settings(database_url=db.url, config_dir=tmp_path / "config",
                             rules_frozen_now=NOW)
    data = snapshot(db, settings=settings)
    headline = {k["kpi"]: k for k in data["kpis"]["kpis"]}
    assert list(headline) == config.estado and data["kpis"]["periodo"] == "2026-11"
    # November's figures from the hand-computed test above, formatted for Mexico.
    assert (headline["csat"]["valor"], headline["csat"]["meta"], headline["csat"]["cumple"]) \
        == ("60.0 %", "≥ 90.0 %", "no")
    assert (headline["primera_respuesta_promedio"]["valor"],
            headline["primera_respuesta_promedio"]["cumple"]) == ("1.6 h", "sí")
    assert headline["nps"]["valor"] == "+33.3" and headline["nps"]["meta"] == "—"
    page = render(data)
    assert "KPIs del mes 2026-11" in page and "60.0 %" in page and "None" not in page
