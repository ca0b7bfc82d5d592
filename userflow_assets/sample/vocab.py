"""Word lists the sample warehouse draws from.

Kept small and plain so the generated rows look like a B2B SaaS product's warehouse:
people with international names, companies with made-up names, a product event vocabulary.
"""

from __future__ import annotations

FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
    "Thomas", "Sarah", "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy",
    "Anthony", "Sandra", "Mark", "Ashley", "Steven", "Emily", "Andrew", "Michelle",
    "Joshua", "Amanda", "Kevin", "Melissa", "Brian", "Stephanie", "George", "Rebecca",
    "Timothy", "Laura", "Jason", "Hannah", "Ryan", "Olivia", "Jacob", "Emma",
    "Lukas", "Lena", "Jonas", "Anna", "Felix", "Marie", "Maximilian", "Sophie",
    "Léa", "Hugo", "Chloé", "Louis", "Camille", "Théo", "Zoë", "Noémie",
    "José", "Lucía", "Mateo", "Sofía", "Martín", "Valentina", "Joaquín", "Inés",
    "João", "Beatriz", "Gonçalo", "Ana", "Søren", "Freja", "Björn", "Åsa",
    "Jürgen", "Ingrid", "Lars", "Sven", "Kenji", "Yuki", "Haruto", "Aiko",
    "Priya", "Arjun", "Ananya", "Rohan", "Wei", "Mei", "Chen", "Li",
    "Aisha", "Omar", "Fatima", "Yusuf", "Chidi", "Amara", "Kwame", "Zanele",
    "Siobhán", "Niamh", "Ciarán", "Oisín", "Mateusz", "Zofia", "Łukasz", "Agnieszka",
)

LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White",
    "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Dubois", "Lefèvre", "Moreau", "Laurent", "Girard", "Bonnet", "Dupont", "Lambert",
    "García", "Fernández", "González", "Rodríguez", "Martínez", "Sánchez", "Pérez", "Gómez",
    "Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Almeida", "Conceição",
    "Andersen", "Nielsen", "Hansen", "Jørgensen", "Larsson", "Åberg", "Lindqvist", "Berg",
    "Tanaka", "Suzuki", "Sato", "Watanabe", "Kim", "Park", "Wang", "Zhang",
    "Patel", "Sharma", "Singh", "Gupta", "Okafor", "Mensah", "Abubakar", "Dlamini",
    "O'Brien", "O'Connor", "Murphy", "Kelly", "Kowalski", "Nowak", "Wiśniewski", "Wójcik",
)

PERSONAL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "gmx.de", "hotmail.co.uk",
)

COMPANY_WORDS: tuple[str, ...] = (
    "North", "Blue", "Bright", "Iron", "Silver", "Red", "Green", "Granite", "Cedar", "Maple",
    "Summit", "Harbor", "River", "Stone", "Golden", "Swift", "Clear", "Pine", "Falcon", "Nova",
    "Atlas", "Orbit", "Vertex", "Polar", "Echo", "Lumen", "Quartz", "Signal", "Copper", "Delta",
    "Apex", "Beacon", "Cobalt", "Ember", "Fjord", "Helix", "Juniper", "Kestrel", "Meridian", "Oak",
)

COMPANY_NOUNS: tuple[str, ...] = (
    "wind", "field", "bridge", "path", "works", "forge", "stack", "line", "point", "gate",
    "labs", "cloud", "loop", "base", "shift", "mark", "scale", "wave", "peak", "grid",
    "metrics", "logic", "yard", "craft", "hub", "sphere", "flow", "desk", "ware", "port",
)

COMPANY_SUFFIXES: tuple[str, ...] = (
    "Inc.", "LLC", "Ltd", "GmbH", "SAS", "AB", "Labs", "Technologies", "Group", "Co.",
)

TLDS: tuple[str, ...] = (".com", ".io", ".co", ".de", ".fr", ".app", ".dev", ".co.uk")

INDUSTRIES: tuple[str, ...] = (
    "Software", "Fintech", "Healthcare", "E-commerce", "Education", "Logistics",
    "Manufacturing", "Media", "Real Estate", "Consulting", "Travel", "Nonprofit",
)

PLANS: tuple[str, ...] = ("free", "starter", "pro", "enterprise")
# Share of accounts per plan, and monthly price per seat (free is 0).
PLAN_WEIGHTS: tuple[float, ...] = (0.30, 0.35, 0.25, 0.10)
PLAN_SEAT_PRICE: tuple[float, ...] = (0.0, 15.0, 45.0, 80.0)

USER_ROLES: tuple[str, ...] = ("admin", "member", "viewer", "billing")
USER_ROLE_WEIGHTS: tuple[float, ...] = (0.12, 0.68, 0.15, 0.05)

# (locale, ISO country) pairs, so a user's locale and country agree.
LOCALES: tuple[tuple[str, str], ...] = (
    ("en-US", "US"), ("en-GB", "GB"), ("de-DE", "DE"), ("fr-FR", "FR"), ("es-ES", "ES"),
    ("pt-BR", "BR"), ("ja-JP", "JP"), ("nl-NL", "NL"), ("sv-SE", "SE"), ("en-CA", "CA"),
    ("fr-CA", "CA"), ("en-AU", "AU"), ("it-IT", "IT"), ("pl-PL", "PL"), ("en-IN", "IN"),
    ("da-DK", "DK"), ("es-MX", "MX"), ("de-AT", "AT"),
)
LOCALE_WEIGHTS: tuple[float, ...] = (
    0.34, 0.09, 0.09, 0.07, 0.05, 0.06, 0.04, 0.03, 0.02, 0.03,
    0.02, 0.03, 0.03, 0.02, 0.03, 0.01, 0.03, 0.01,
)

BIOS: tuple[str, ...] = (
    "Product manager. Coffee first.",
    "Customer success at heart.",
    "Building onboarding that people finish.",
    "Data nerd, part-time runner.",
    "Head of growth.",
    "Engineer who reads the docs.",
    "Designer. Likes whitespace.",
    "Ops lead, spreadsheet whisperer.",
    "Founder. Ask me about churn.",
    "Support team, EMEA.",
)

# Text repeated to build the over-long strings (bio, account name) of the long_string kind.
LONG_BIO_SENTENCE = "I care about activation, retention and the first five minutes of every trial. "
LONG_NAME_WORD = "Holdings "

# Product events. The canonical names mix separators on purpose ("Feature_Activated" next to
# "Project Created"), as real tracking plans often do; the first event of every user is "Signed Up".
EVENT_NAMES: tuple[str, ...] = (
    "Signed Up", "Logged In", "Project Created", "Feature_Activated", "Invite Sent",
    "Invite Accepted", "Checklist Completed", "Report Exported", "Integration Connected",
    "Subscription Upgraded", "Comment Added", "Dashboard Viewed",
)
# Relative frequency of the events after sign-up (index 0, "Signed Up", is never drawn again).
EVENT_WEIGHTS: tuple[float, ...] = (
    0.0, 0.30, 0.10, 0.10, 0.08, 0.05, 0.05, 0.06, 0.04, 0.02, 0.10, 0.10,
)
EVENT_SOURCES: tuple[str, ...] = ("web", "web", "web", "ios", "android", "api")
FEATURES: tuple[str, ...] = ("sso", "exports", "api", "automations", "dashboards", "audit_log")
TEMPLATES: tuple[str, ...] = ("blank", "kanban", "roadmap", "sprint", "crm")
CHECKLISTS: tuple[str, ...] = ("Getting started", "Invite your team", "Connect your data")
EXPORT_FORMATS: tuple[str, ...] = ("csv", "pdf", "xlsx")
INTEGRATIONS: tuple[str, ...] = ("Slack", "Salesforce", "HubSpot", "Zapier", "Jira", "Segment")
DASHBOARDS: tuple[str, ...] = ("Overview", "Funnels", "Retention", "Revenue")
