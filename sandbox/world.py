"""The deterministic demo world of SPEC section 3: one year of Saeko's post-sale department.

Pure data, no I/O: every emulated tool seeds itself from the same ``World`` so that Podio
tickets, Jira issues, survey answers and usage rows agree. The same (seed, clients, now)
always gives the same world. All people, schools and domains are invented (.test domains).
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

REGION_TZ = {"Tijuana": "America/Tijuana", "Tecate": "America/Tijuana",
             "Bajío": "America/Mexico_City"}
REGION_CITIES = {"Tijuana": ["Tijuana", "Rosarito"], "Tecate": ["Tecate"],
                 "Bajío": ["León", "Querétaro", "Guanajuato", "Celaya", "Irapuato"]}
PRODUCTS = ["Saeko Gestión", "Saeko Cobranza", "Saeko Completo"]
LEVELS = ["Preescolar", "Primaria", "Secundaria", "Preparatoria", "Universidad"]
MODULES = ["Inscripciones", "Reinscripciones", "Admisiones", "Calificaciones", "Cobranza",
           "Inicio de ciclo", "Cierre de ciclo", "Migraciones", "Otro"]
CHANNELS = [("WhatsApp", 45), ("Correo", 25), ("Teléfono", 20), ("Portal", 10)]
PRIORITIES = [("Baja", 30), ("Media", 45), ("Alta", 20), ("Crítica", 5)]
TICKET_STATUSES = ["Nuevo", "En atención", "Escalado", "Por validar", "Enviado a AM", "Cerrado"]
JIRA_WORKFLOWS = {  # status names in order; first = new, last = done, others = indeterminate
    "SOP": ["Abierto", "En progreso", "Resuelto"],
    "DEV": ["Por hacer", "En desarrollo", "En pruebas", "Listo"],
    "PROD": ["Backlog", "En análisis", "Cerrado"],
}
JIRA_PROJECT_NAMES = {"SOP": "Soporte N2", "DEV": "Desarrollo", "PROD": "Producto"}
# M4: the users who asked not to be surveyed: key % OPT_OUT_EVERY == OPT_OUT_REMAINDER (one
# in 13, by key, so the random draws of the rest of the world stay the same).
OPT_OUT_EVERY, OPT_OUT_REMAINDER = 13, 6
# Identities shared by every emulated tool, so Jira issues and survey answers can point at
# Podio items: app ids and item ids of the seeded world are fixed functions of the world keys.
PODIO_SPACE_ID = 2001
PODIO_APP_IDS = {"clientes": 30001, "escuelas": 30002, "usuarios": 30003, "tickets": 30004,
                 "contratos": 30005, "facturas": 30006, "seguimientos": 30007}
_PODIO_ITEM_BASE = {"clientes": 1_000_000, "escuelas": 2_000_000, "usuarios": 3_000_000,
                    "tickets": 4_000_000, "contratos": 5_000_000, "facturas": 6_000_000}
PODIO_NEW_ITEM_START = 9_000_000  # items created at run time get ids from here on


def podio_item_id(app: str, key: int) -> int:
    """The Podio item id of a world record (e.g. podio_item_id("tickets", 17))."""
    return _PODIO_ITEM_BASE[app] + key


RESOLUTIONS = ["Corregido", "Configuración ajustada", "No se puede reproducir", "Duplicado"]

# Month weights of ticket arrivals: inicio de ciclo (Aug-Sep), cierre (Jun-Jul),
# reinscripciones (Feb-Apr), quiet December.
MONTH_WEIGHT = {1: 1.1, 2: 1.3, 3: 1.3, 4: 1.1, 5: 1.0, 6: 1.4, 7: 1.5, 8: 2.0, 9: 1.5,
                10: 1.0, 11: 0.9, 12: 0.5}
MODULE_BY_MONTH = {2: "Reinscripciones", 3: "Reinscripciones", 4: "Admisiones",
                   6: "Cierre de ciclo", 7: "Cierre de ciclo", 8: "Inicio de ciclo",
                   9: "Inscripciones"}
WORK_START, WORK_END = 9, 18  # demo business hours, local time

_FIRST = ["María", "José", "Guadalupe", "Juan", "Fernanda", "Luis", "Ana", "Carlos", "Sofía",
          "Miguel", "Valeria", "Jorge", "Daniela", "Ricardo", "Lucía", "Andrés", "Paola",
          "Héctor", "Mariana", "Arturo", "Gabriela", "Raúl", "Ximena", "Sergio", "Claudia",
          "Eduardo", "Patricia", "Óscar", "Verónica", "Alejandro"]
_LAST = ["García", "Hernández", "López", "Martínez", "González", "Rodríguez", "Pérez",
         "Sánchez", "Ramírez", "Flores", "Torres", "Rivera", "Gómez", "Díaz", "Cruz", "Morales",
         "Reyes", "Gutiérrez", "Ortiz", "Ruiz", "Aguilar", "Castillo", "Jiménez", "Vargas",
         "Mendoza", "Romero", "Herrera", "Medina", "Castro", "Vázquez"]
_SCHOOL_PREFIX = ["Colegio", "Instituto", "Escuela", "Centro Educativo", "Liceo", "Academia"]
_SCHOOL_NAME = ["Alameda", "Los Pinos", "Del Valle", "Las Américas", "Monte Claro", "El Roble",
                "Vista Hermosa", "San Ángel", "La Esperanza", "Bosques", "Horizonte", "Cumbres",
                "Sierra Azul", "Nuevo Amanecer", "Brisas", "Arboleda", "Mirador", "Santa Fe",
                "Las Palmas", "Jardines", "Valle Dorado", "Tres Ríos", "Altavista", "Girasoles",
                "El Faro", "Campestre", "La Cima", "Lomas", "Río Bravo", "Aurora"]
_TITLES = {
    "Inscripciones": ["No se guarda la inscripción de un alumno", "Error al capturar datos de inscripción"],
    "Reinscripciones": ["Padres no pueden completar la reinscripción", "Reinscripción duplica el cargo"],
    "Admisiones": ["El formulario de admisión no envía", "No aparecen aspirantes en la lista"],
    "Calificaciones": ["No se pueden capturar calificaciones", "Boleta con promedio incorrecto"],
    "Cobranza": ["Pago no reflejado en estado de cuenta", "Error al generar referencia de pago"],
    "Inicio de ciclo": ["Configurar grupos del nuevo ciclo", "Alta masiva de alumnos falla"],
    "Cierre de ciclo": ["No permite cerrar el ciclo escolar", "Reporte de cierre incompleto"],
    "Migraciones": ["Faltan alumnos tras la migración", "Importación de historial con errores"],
    "Otro": ["Duda sobre permisos de usuario", "Solicitud de capacitación", "No recuerdo mi contraseña"],
}
_CSAT_COMMENTS = {True: ["Muy rápida la atención, gracias", "Excelente servicio", "Resolvieron mi duda",
                         "Todo bien, muy amables", ""],
                  False: ["Tardaron demasiado en responder", "El problema sigue sin resolverse",
                          "No me explicaron bien la solución", "Tuve que insistir varias veces"]}
_NPS_COMMENTS = {"promoter": ["La plataforma nos ahorra mucho tiempo", "Muy buen acompañamiento"],
                 "passive": ["Funciona bien pero falta capacitación", "Algunos reportes son lentos"],
                 "detractor": ["Muchas fallas en cobranza", "El soporte tarda demasiado",
                               "Estamos evaluando otras opciones"]}


@dataclass
class StaffMember:
    key: str
    name: str
    email: str
    role: str  # coo | am | csm | agent
    podio_user_id: int
    podio_profile_id: int
    jira_account_id: str
    region: str | None = None
    capacity: int | None = None


@dataclass
class Client:
    key: int
    name: str
    segment: str
    burbuja: bool
    am: str | None
    csm: str | None
    product: str
    status: str
    region: str
    signed_on: date
    onboarding_done_on: date | None
    decision_maker: str
    mrr: int
    decision_maker_changes: list[tuple[datetime, str, str]] = field(default_factory=list)
    # Ground truth for M1's benchmark: the world made this client's usage fall in its
    # last six weeks (bench/health_score.py measures how many the score flags).
    declining: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(REGION_TZ[self.region])


@dataclass
class School:
    key: int
    client_key: int
    name: str
    level: str
    city: str


@dataclass
class User:
    key: int
    school_key: int
    name: str
    email: str
    phone: str
    role: str  # Directivo | Operativo
    # M4: asked not to be surveyed (Podio «no-encuestar»); one user in OPT_OUT_EVERY, by key,
    # so the world's random draws are unchanged.
    no_survey: bool = False


@dataclass
class Escalation:
    key: str  # the Jira issue key, e.g. SOP-12
    project: str
    issue_type: str
    created_at: datetime
    history: list[tuple[datetime, str, str]]  # (at, from status, to status)
    resolution: str | None

    @property
    def status(self) -> str:
        return self.history[-1][2] if self.history else JIRA_WORKFLOWS[self.project][0]

    @property
    def resolved_at(self) -> datetime | None:
        done = JIRA_WORKFLOWS[self.project][-1]
        return next((at for at, _f, to in self.history if to == done), None)


@dataclass
class Ticket:
    key: int
    client_key: int
    school_key: int
    user_key: int
    title: str
    description: str
    module: str
    channel: str
    priority: str
    status: str
    responsible: str
    opened_at: datetime
    first_response_at: datetime | None
    closed_at: datetime | None
    answer: str | None
    escalation: Escalation | None
    complete: bool  # auto-fields already filled (historic tickets) or left for T1


@dataclass
class Contract:
    key: int
    client_key: int
    kind: str
    starts_on: date
    ends_on: date
    amount: int
    status: str


@dataclass
class Invoice:
    key: int
    client_key: int
    folio: str
    amount: int
    due_on: date
    paid_on: date | None
    status: str


@dataclass
class UsageRow:
    client_key: int
    week_start: date
    active_users: int
    logins: int
    key_features: int


@dataclass
class SurveyAnswer:
    key: int
    kind: str  # csat | nps
    submitted_at: datetime
    score: int
    comment: str
    email: str
    client_key: int
    ticket_key: int | None = None


@dataclass
class World:
    seed: int
    now: datetime
    staff: list[StaffMember]
    clients: list[Client] = field(default_factory=list)
    schools: list[School] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    contracts: list[Contract] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    usage: list[UsageRow] = field(default_factory=list)
    surveys: list[SurveyAnswer] = field(default_factory=list)

    def staff_by_key(self, key: str | None) -> StaffMember | None:
        return next((s for s in self.staff if s.key == key), None)

    def summary(self) -> dict[str, int]:
        return {
            "clients": len(self.clients), "schools": len(self.schools), "users": len(self.users),
            "tickets": len(self.tickets),
            "escalated": sum(1 for t in self.tickets if t.escalation),
            "contracts": len(self.contracts), "invoices": len(self.invoices),
            "usage_rows": len(self.usage), "surveys": len(self.surveys),
        }

    def summary_text(self) -> str:
        """The summary in Spanish, for people ("20 clientes, 40 escuelas, …")."""
        n = self.summary()
        return (f"{n['clients']} clientes, {n['schools']} escuelas, {n['users']} usuarios, "
                f"{n['tickets']} tickets ({n['escalated']} escalados a Jira), "
                f"{n['contracts']} contratos, {n['invoices']} facturas, {n['usage_rows']} "
                f"filas de uso semanal, {n['surveys']} encuestas")


def demo_staff() -> list[StaffMember]:
    """The department: a COO, 4 AMs, 3 CSMs and 5 support agents (@saeko.test)."""
    people = [
        ("coo", "Regina Salas", "coo", None, None),
        ("am-tijuana-1", "Marco Ibarra", "am", "Tijuana", 30),
        ("am-tijuana-2", "Elena Quiroz", "am", "Tijuana", 30),
        ("am-tecate", "Tomás Villalobos", "am", "Tecate", 25),
        ("am-bajio", "Adriana Pineda", "am", "Bajío", 30),
        ("csm-1", "Irene Cordero", "csm", None, None),
        ("csm-2", "Julián Meza", "csm", None, None),
        ("csm-3", "Natalia Robles", "csm", None, None),
        ("agente-1", "Diego Fuentes", "agent", None, None),
        ("agente-2", "Karla Nava", "agent", None, None),
        ("agente-3", "Rubén Olmos", "agent", None, None),
        ("agente-4", "Sara Lozano", "agent", None, None),
        ("agente-5", "Iván Treviño", "agent", None, None),
    ]
    return [
        StaffMember(key=key, name=name, email=f"{key}@saeko.test", role=role,
                    podio_user_id=1001 + i, podio_profile_id=5001 + i,
                    jira_account_id=f"5f0c1a2b3c4d5e6f7a8b{i:04d}", region=region,
                    capacity=capacity)
        for i, (key, name, role, region, capacity) in enumerate(people)
    ]


def slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch if ch.isalnum() else "-" for ch in plain.lower()).strip("-").replace("--", "-")


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def add_business_hours(start: datetime, hours: float, tz: ZoneInfo) -> datetime:
    """Add working hours (Mon-Fri, WORK_START-WORK_END local) to a UTC-naive instant."""
    local = start.replace(tzinfo=UTC).astimezone(tz)
    remaining = timedelta(hours=hours)
    while remaining > timedelta(0):
        day_start = local.replace(hour=WORK_START, minute=0, second=0, microsecond=0)
        day_end = local.replace(hour=WORK_END, minute=0, second=0, microsecond=0)
        if local.weekday() >= 5 or local >= day_end:
            local = (day_start + timedelta(days=1))
            continue
        if local < day_start:
            local = day_start
        step = min(remaining, day_end - local)
        local += step
        remaining -= step
    return local.astimezone(UTC).replace(tzinfo=None)


class _Builder:
    def __init__(self, clients: int, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.n_clients = clients
        self.now = now
        self.world = World(seed=seed, now=now, staff=demo_staff())
        self.client_names: set[str] = set()
        self.jira_counters: dict[str, int] = {}

    def build(self) -> World:
        for key in range(1, self.n_clients + 1):
            self._client(key)
        self._tickets()
        return self.world

    def _person(self) -> str:
        return f"{self.rng.choice(_FIRST)} {self.rng.choice(_LAST)} {self.rng.choice(_LAST)}"

    def _client_name(self, region: str) -> str:
        for _ in range(50):
            name = f"{self.rng.choice(_SCHOOL_PREFIX)} {self.rng.choice(_SCHOOL_NAME)}"
            if name not in self.client_names:
                break
            name = f"{name} {self.rng.choice(REGION_CITIES[region])}"
            if name not in self.client_names:
                break
        else:
            name = f"{name} {len(self.client_names) + 1}"
        self.client_names.add(name)
        return name

    def _client(self, key: int) -> None:
        rng, w = self.rng, self.world
        region = rng.choices(["Tijuana", "Tecate", "Bajío"], weights=[50, 15, 35])[0]
        ams = [s.key for s in w.staff if s.role == "am" and s.region == region]
        csms = [s.key for s in w.staff if s.role == "csm"]
        onboarding = rng.random() < 0.06 or key == 3
        signed = (self.now - timedelta(days=rng.randint(20, 60) if onboarding
                                       else rng.randint(120, 1500))).date()
        client = Client(
            key=key, name=self._client_name(region),
            segment="TOP" if rng.random() < 0.15 else "Estándar",
            burbuja=rng.random() < 0.05 or key == 2,
            am=None if onboarding else rng.choice(ams), csm=rng.choice(csms),
            product=rng.choice(PRODUCTS), status="Onboarding" if onboarding else "Activo",
            region=region, signed_on=signed,
            onboarding_done_on=None if onboarding else signed + timedelta(days=rng.randint(30, 75)),
            decision_maker=self._person(), mrr=rng.choice([4500, 8000, 12000, 18000, 25000, 40000]),
        )
        if rng.random() < 0.06:
            old, new = client.decision_maker, self._person()
            client.decision_maker = new
            client.decision_maker_changes.append(
                (self.now - timedelta(days=rng.randint(3, 60), hours=rng.randint(0, 23)), old, new))
        w.clients.append(client)
        for _ in range(rng.randint(1, 3)):
            school = School(key=len(w.schools) + 1, client_key=key,
                            name=f"{client.name} {rng.choice(LEVELS)}" if rng.random() < 0.6
                            else f"{client.name} Campus {rng.choice(REGION_CITIES[region])}",
                            level=rng.choice(LEVELS), city=rng.choice(REGION_CITIES[region]))
            w.schools.append(school)
        self._users(client)
        self._contract(client)
        self._invoices(client)
        self._usage(client)

    def _users(self, client: Client) -> None:
        rng, w = self.rng, self.world
        schools = [s for s in w.schools if s.client_key == client.key]
        domain = f"{slug(client.name)}.edu.test"
        for i in range(rng.randint(3, 15)):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            w.users.append(User(
                key=len(w.users) + 1, school_key=rng.choice(schools).key, name=f"{first} {last}",
                email=f"{slug(first)}.{slug(last)}{i}@{domain}",
                phone=f"+52 {rng.choice(['664', '665', '477', '442'])} {rng.randint(100, 999)} "
                      f"{rng.randint(1000, 9999)}",
                role="Directivo" if i == 0 or rng.random() < 0.15 else "Operativo",
                no_survey=(len(w.users) + 1) % OPT_OUT_EVERY == OPT_OUT_REMAINDER))

    def _contract(self, client: Client) -> None:
        rng, w = self.rng, self.world
        ends = (self.now + timedelta(days=rng.randint(-45, 365))).date()
        status = "Vigente"
        if ends < self.now.date():
            status = rng.choice(["Vigente", "En renovación", "Cancelado"])
        elif (ends - self.now.date()).days < 100 and rng.random() < 0.25:
            status = "En renovación"
        kind = "Nuevo" if client.signed_on > ends - timedelta(days=400) else "Renovación"
        w.contracts.append(Contract(key=len(w.contracts) + 1, client_key=client.key, kind=kind,
                                    starts_on=ends - timedelta(days=365), ends_on=ends,
                                    amount=client.mrr * 12, status=status))
        if status == "Vigente" and rng.random() < 0.08 and (ends - self.now.date()).days < 60:
            w.contracts[-1].status = "Renovado"
            w.contracts.append(Contract(key=len(w.contracts) + 1, client_key=client.key,
                                        kind="Renovación", starts_on=ends,
                                        ends_on=ends + timedelta(days=365),
                                        amount=int(client.mrr * 12 * 1.05), status="Vigente"))

    def _invoices(self, client: Client) -> None:
        rng, w = self.rng, self.world
        moroso = rng.random() < 0.12
        month = date(self.now.year - 1, self.now.month, 1)
        while month <= self.now.date():
            if month >= client.signed_on.replace(day=1):
                due = month + timedelta(days=14)
                unpaid = due < self.now.date() and (
                    (moroso and (self.now.date() - due).days < 120 and rng.random() < 0.6)
                    or rng.random() < 0.02)
                paid = None
                if not unpaid and due < self.now.date() + timedelta(days=5):
                    paid = due + timedelta(days=rng.randint(-10, 12))
                    paid = min(paid, self.now.date())
                status = "Pagada" if paid else ("Vencida" if due < self.now.date() else "Pendiente")
                w.invoices.append(Invoice(
                    key=len(w.invoices) + 1, client_key=client.key,
                    folio=f"F-{month:%Y%m}-{client.key:05d}", amount=client.mrr, due_on=due,
                    paid_on=paid, status=status))
            month = (month + timedelta(days=32)).replace(day=1)

    def _usage(self, client: Client) -> None:
        rng, w = self.rng, self.world
        base = rng.randint(40, 900)
        declining = rng.random() < 0.10 or client.key == 4
        client.declining = declining
        growth = rng.uniform(-0.003, 0.012)
        monday = (self.now - timedelta(days=self.now.weekday())).date()
        for week in range(26, 0, -1):
            start = monday - timedelta(weeks=week)
            value = base * (1 + growth) ** (26 - week) * rng.uniform(0.93, 1.07)
            if declining and week <= 6:
                value *= max(0.25, 1 - 0.12 * (7 - week))
            active = max(1, int(value))
            w.usage.append(UsageRow(client.key, start, active,
                                    logins=int(active * rng.uniform(2.5, 6.0)),
                                    key_features=max(1, int(rng.uniform(3, 12) * (value / base)))))

    def _tickets(self) -> None:
        rng, w = self.rng, self.world
        start = self.now - timedelta(days=365)
        days = [start + timedelta(days=d) for d in range(366)]
        weights = [MONTH_WEIGHT[d.month] for d in days]
        agents = [s.key for s in w.staff if s.role == "agent"]
        users_by_client: dict[int, list[User]] = {}
        school_client = {s.key: s.client_key for s in w.schools}
        for user in w.users:
            users_by_client.setdefault(school_client[user.school_key], []).append(user)
        repeaters = {c.key: rng.choice(MODULES[:8]) for c in w.clients if rng.random() < 0.1}
        planned = []
        for client in w.clients:
            for _ in range(max(1, int(rng.gauss(30, 8)))):
                day = rng.choices(days, weights=weights)[0]
                planned.append((day, client))
        planned.sort(key=lambda p: (p[0], p[1].key))
        for day, client in planned:
            opened = self._business_instant(day, client.tz)
            if opened > self.now:
                continue
            module = MODULE_BY_MONTH.get(opened.month) if rng.random() < 0.5 else None
            if client.key in repeaters and (self.now - opened).days < 60 and rng.random() < 0.6:
                module = repeaters[client.key]
            module = module or rng.choice(MODULES)
            self._ticket(client, opened, module, rng.choice(users_by_client[client.key]), agents)
        self._nps()

    def _business_instant(self, day: datetime, tz: ZoneInfo) -> datetime:
        local_day = day.date()
        while local_day.weekday() >= 5:
            local_day += timedelta(days=1)
        local = datetime.combine(local_day, time(WORK_START), tzinfo=tz) + timedelta(
            minutes=self.rng.randint(0, (WORK_END - WORK_START) * 60 - 1))
        return local.astimezone(UTC).replace(tzinfo=None, microsecond=0)

    def _ticket(self, client: Client, opened: datetime, module: str, user: User,
                agents: list[str]) -> None:
        rng, w = self.rng, self.world
        age_days = (self.now - opened).total_seconds() / 86400
        title = rng.choice(_TITLES[module])
        roll = rng.random()
        hours = (rng.uniform(0.1, 2.0) if roll < 0.7 else rng.uniform(2, 8) if roll < 0.9
                 else rng.uniform(8, 45))
        first_response: datetime | None = add_business_hours(opened, hours, client.tz)
        if first_response is not None and first_response > self.now:
            first_response = None
        escalation = None
        if rng.random() < 0.2 and first_response is not None:
            escalation = self._escalation(module, first_response)
        closed = None
        if age_days > 10 or (first_response is not None and rng.random() < 0.5):
            resolved = escalation.resolved_at if escalation else first_response
            if resolved is not None:
                closed = add_business_hours(resolved, rng.uniform(0.5, 30), client.tz)
                if closed > self.now:
                    closed = None
        if closed is not None:
            status = "Cerrado" if rng.random() < 0.85 else "Enviado a AM"
        elif escalation is not None:
            status = "Por validar" if escalation.resolved_at and rng.random() < 0.5 else "Escalado"
        elif first_response is not None:
            status = "En atención"
        else:
            status = "Nuevo"
        ticket = Ticket(
            key=len(w.tickets) + 1, client_key=client.key, school_key=user.school_key,
            user_key=user.key, title=title,
            description=f"{title}. Reportado por {user.name} vía "
                        f"{rng.choice([c for c, _ in CHANNELS])}.",
            module=module, channel=_weighted(rng, CHANNELS), priority=_weighted(rng, PRIORITIES),
            status=status, responsible=rng.choice(agents), opened_at=opened,
            first_response_at=first_response, closed_at=closed,
            answer="Se atendió la solicitud y se explicó el procedimiento al usuario."
            if closed else None,
            escalation=escalation, complete=age_days > 7)
        w.tickets.append(ticket)
        if closed is not None and rng.random() < 0.8:
            positive = rng.random() < 0.9
            score = rng.choice([4, 5, 5]) if positive else rng.choice([1, 2, 3])
            submitted = closed + timedelta(hours=rng.uniform(0.5, 48))
            if submitted <= self.now:
                w.surveys.append(SurveyAnswer(
                    key=len(w.surveys) + 1, kind="csat", submitted_at=submitted, score=score,
                    comment=rng.choice(_CSAT_COMMENTS[score >= 4]), email=user.email,
                    client_key=client.key, ticket_key=ticket.key))

    def _escalation(self, module: str, at: datetime) -> Escalation:
        rng = self.rng
        project = rng.choices(["SOP", "DEV", "PROD"], weights=[60, 30, 10])[0]
        flow = JIRA_WORKFLOWS[project]
        created = at + timedelta(minutes=rng.randint(5, 240))
        history: list[tuple[datetime, str, str]] = []
        moment = created
        for previous, target in zip(flow, flow[1:], strict=False):
            moment = moment + timedelta(hours=rng.uniform(2, 96))
            if moment > self.now or (target == flow[-1] and rng.random() < 0.25):
                break
            history.append((moment, previous, target))
        resolution = rng.choice(RESOLUTIONS) if history and history[-1][2] == flow[-1] else None
        issue_type = "Error" if project != "PROD" else "Mejora"
        self.jira_counters[project] = self.jira_counters.get(project, 0) + 1
        key = f"{project}-{self.jira_counters[project]}"
        return Escalation(key, project, issue_type, min(created, self.now), history, resolution)

    def _nps(self) -> None:
        rng, w = self.rng, self.world
        school_client = {s.key: s.client_key for s in w.schools}
        directivos = [u for u in w.users if u.role == "Directivo"]
        for quarter in range(4, 0, -1):
            sent = self.now - timedelta(days=91 * quarter - 10)
            for user in directivos:
                if rng.random() > 0.6:
                    continue
                kind = rng.choices(["promoter", "passive", "detractor"], weights=[50, 30, 20])[0]
                score = {"promoter": rng.choice([9, 10]), "passive": rng.choice([7, 8]),
                         "detractor": rng.randint(0, 6)}[kind]
                w.surveys.append(SurveyAnswer(
                    key=len(w.surveys) + 1, kind="nps",
                    submitted_at=sent + timedelta(hours=rng.uniform(1, 240)), score=score,
                    comment=rng.choice(_NPS_COMMENTS[kind]), email=user.email,
                    client_key=school_client[user.school_key]))


def build_world(clients: int = 20, seed: int = 7, now: datetime | None = None) -> World:
    """Generate the demo world. ``now`` defaults to the current hour (UTC, naive)."""
    anchor = now or datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    return _Builder(clients, seed, anchor.replace(tzinfo=None)).build()
