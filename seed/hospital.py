"""What the generated hospital looks like and how its people behave.

Departments, their size and mix of urgencies, when consults arrive, how long
people take, how often a consult is handed off, redirected, followed up or
cancelled, and the words they write. Only data: seed/story.py plays it out.
"""

from broker.models import Urgency

# slug, name, share of consults, consultants besides the chief,
# (stat, urgent, routine) weights, departments a misdirected consult goes to
DEPARTMENTS = [
    ("radiology", "Radiology", 30, 13, (10, 30, 60), ("cardiology", "neurology", "gastroenterology")),
    ("pathology", "Pathology", 12, 8, (3, 22, 75), ("hematology", "gastroenterology")),
    ("cardiology", "Cardiology", 14, 10, (14, 34, 52), ("radiology", "nephrology")),
    ("neurology", "Neurology", 10, 8, (15, 30, 55), ("radiology", "psychiatry")),
    ("infectious-diseases", "Infectious Diseases", 9, 7, (6, 30, 64), ("hematology", "gastroenterology")),
    ("gastroenterology", "Gastroenterology", 8, 7, (8, 30, 62), ("radiology", "infectious-diseases")),
    ("nephrology", "Nephrology", 7, 6, (8, 30, 62), ("cardiology",)),
    ("hematology", "Hematology", 6, 6, (8, 28, 64), ("pathology", "infectious-diseases")),
    ("psychiatry", "Psychiatry", 4, 5, (6, 30, 64), ("neurology",)),
]  # fmt: skip
REQUESTERS = 300
URGENCIES = (Urgency.STAT.value, Urgency.URGENT.value, Urgency.ROUTINE.value)

# Relative arrivals by hour of day (UTC, taken as the hospital's time) and weekday.
HOURLY = [0.25, 0.2, 0.18, 0.16, 0.16, 0.2, 0.35, 0.7, 1.2, 1.6, 1.75, 1.7,
          1.45, 1.55, 1.65, 1.55, 1.35, 1.05, 0.8, 0.65, 0.55, 0.45, 0.38, 0.3]  # fmt: skip
WEEKDAYS = [1.1, 1.05, 1.0, 1.0, 0.95, 0.5, 0.42]  # Monday first

# Behaviour, in minutes, per urgency: median time to claim and median work from
# claim to answer, with their log-normal spreads. Scaled on the spec's default
# deadlines, whatever a department's policy says: people do not speed up because
# a deadline moved, they miss it.
CLAIM_MEDIAN = {"stat": 4.0, "urgent": 14.0, "routine": 90.0}
CLAIM_SIGMA = {"stat": 0.7, "urgent": 0.8, "routine": 0.9}
WORK_MEDIAN = {"stat": 14.0, "urgent": 50.0, "routine": 300.0}
WORK_SIGMA = {"stat": 0.6, "urgent": 0.7, "routine": 1.0}
NEGLECTED = 0.012  # a consult forgotten in the queue, or by its owner, for a while

CANCELLED = 0.04
REDIRECTED = 0.03
HANDED_OFF = 0.055
HANDOFF_DECLINED = 0.15
FOLLOWED_UP = 0.10
FOLLOWED_UP_AGAIN = 0.15
CLOSED_BY_REQUESTER = 0.82
RATED = 0.92
COMMENTED = 0.3
RATINGS = (1, 2, 3, 4, 5)
RATING_WEIGHTS = (3, 4, 10, 28, 55)
RATING_WEIGHTS_LATE = (8, 12, 20, 30, 30)

FIRST_NAMES = [
    "Ada", "Ben", "Chloe", "Omar", "Priya", "Lena", "Marcus", "Sam", "Jordan", "Aisha",
    "Mateo", "Hana", "Ivan", "Grace", "Kwame", "Elena", "Tomas", "Yuki", "Nadia", "Felix",
    "Ines", "Ravi", "Sofia", "David", "Amara", "Lucas", "Mei", "Noah", "Zara", "Erik",
    "Fatima", "Hugo", "Leila", "Oscar", "Rosa", "Sanjay", "Tessa", "Victor", "Wen", "Yara",
]  # fmt: skip
LAST_NAMES = [
    "Abara", "Bergstrom", "Chen", "Dubois", "Eze", "Ferreira", "Gupta", "Hansen", "Ibrahim",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Osei", "Petrov", "Quinn", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zhou", "Alvarez",
    "Becker", "Costa", "Dimitrov", "Evans", "Fontaine", "Garcia", "Horvat", "Ito", "Jovanovic",
    "Kim", "Lindqvist", "Mensah", "Novak", "Okoye", "Park", "Reyes", "Silva", "Torres",
    "Ueda", "Vasquez", "Wong", "Yamada", "Zanetti",
]  # fmt: skip
REQUESTER_TITLES = ["Dr. {}", "Dr. {}", "Dr. {}", "Dr. {}", "{}, NP", "{}, PA"]

QUESTIONS = {
    "radiology": [
        "CT abdomen from this morning: is there a drainable collection?",
        "Chest X-ray: new right basal opacity, effusion or consolidation?",
        "MRI spine: any cord compression to explain the new leg weakness?",
        "Ultrasound requested for suspected DVT of the left leg: can it be done today?",
        "Head CT after a fall on anticoagulation: any bleed?",
    ],
    "pathology": [
        "Please review margins on yesterday's colectomy specimen.",
        "Frozen section result for this morning's breast lumpectomy?",
        "Bone marrow aspirate: blasts or reactive change?",
        "Liver biopsy: is this autoimmune hepatitis or drug injury?",
    ],
    "cardiology": [
        "New atrial fibrillation with rate 130 after surgery: rate or rhythm control?",
        "Troponin rising with lateral ST depression: can someone see the patient today?",
        "Pre-operative assessment: is it safe to proceed with hip surgery?",
        "Echo shows reduced ejection fraction: how to start heart-failure treatment?",
    ],
    "neurology": [
        "Sudden left-sided weakness, last seen well 40 minutes ago: thrombolysis?",
        "First seizure in a 30-year-old: start an antiepileptic?",
        "Confusion and headache with fever: need a lumbar puncture first?",
    ],
    "infectious-diseases": [
        "MRSA bacteraemia: how long to treat and is an echo needed?",
        "Fever in a neutropenic patient on piperacillin: escalate antibiotics?",
        "Diabetic foot infection with osteomyelitis: oral switch possible?",
    ],
    "gastroenterology": [
        "Melaena with haemoglobin 78: endoscopy today or tomorrow?",
        "Rising bilirubin after cholecystectomy: ERCP needed?",
        "Refractory ascites: is a TIPS an option?",
    ],
    "nephrology": [
        "Creatinine doubled in 48 hours on vancomycin: dialysis indication?",
        "Potassium 6.8 despite treatment: can you review urgently?",
        "Nephrotic-range proteinuria: biopsy or treat empirically?",
    ],
    "hematology": [
        "Platelets 18 with petechiae: ITP or something else?",
        "Heparin-induced thrombocytopenia suspected: which anticoagulant now?",
        "Unexplained pancytopenia: marrow needed?",
    ],
    "psychiatry": [
        "Agitated delirium on the ward: help with medication?",
        "Patient refusing treatment: can you assess capacity today?",
        "Low mood after stroke: start an antidepressant?",
    ],
}
ANSWERS = [
    "Reviewed. Findings and recommendation are in the report; happy to discuss.",
    "Yes, this needs action today: plan agreed with the team, details in the note.",
    "No acute finding. Continue the current plan and re-consult if things change.",
    "Likely benign. Suggest a repeat in six weeks; no change in management now.",
    "Seen and examined. Recommendations written in the chart, will follow up tomorrow.",
]
FOLLOWUPS = [
    "Thanks. Does this change the timing of surgery?",
    "Could you clarify the dose you suggest?",
    "New result back since: does it alter your advice?",
    "Family asks about prognosis: anything to add?",
]
FOLLOWUP_ANSWERS = [
    "No change to the advice: proceed as planned.",
    "Dose and timing clarified in the note.",
    "Yes, with the new result I would treat now; updated the plan.",
]
HANDOFF_NOTES = [
    "End of my shift; prior imaging is linked.",
    "Called to theatre; this needs someone free now.",
    "Subspecialty question: you know these cases best.",
]
DECLINE_REASONS = [
    "In a procedure for the next two hours.",
    "Not my subspecialty, sorry.",
]
REDIRECT_REASONS = [
    "This needs a different specialty, not us.",
    "Question is for the service that manages this condition.",
]
CANCEL_REASONS = [
    "Patient discharged before the consult was needed.",
    "Question answered on the ward round.",
    "Surgery postponed; will send a new request.",
    "Sent to the wrong patient record.",
]
RATING_COMMENTS = [
    "Clear and quick, thank you.",
    "Very helpful.",
    "Took a while but the answer was thorough.",
    "Would have liked a phone call given the urgency.",
]
