"""What each modality stores for each tissue: CT numbers and MR signal levels.

``(mean, texture amplitude)`` per tissue, the tables a :class:`_Canvas` paints
with; the modality's noise is added when a plane is rendered (``_scene``).
"""

from __future__ import annotations

# ---------------------------------------------------------------- tissue tables

# (mean, texture amplitude) per tissue. CT in Hounsfield units; MR in the
# scanner's arbitrary units scaled to 12 bits.
_CT: dict[str, tuple[float, float]] = {
    "air": (-1000.0, 0.0),
    "gas": (-990.0, 0.0),
    "lung": (-850.0, 18.0),
    "fat": (-100.0, 8.0),
    "water": (3.0, 0.0),
    "csf": (6.0, 1.0),
    "bile": (10.0, 1.5),
    "cyst": (8.0, 1.0),
    "skin": (35.0, 4.0),
    "muscle": (50.0, 5.0),
    "blood": (40.0, 2.0),
    "myocardium": (42.0, 2.0),
    "wm": (28.0, 1.5),
    "gm": (38.0, 1.5),
    "deep_gm": (36.0, 1.5),
    "liver": (60.0, 3.0),
    "vessel_liver": (36.0, 1.0),
    "lesion": (30.0, 4.0),
    "lesion_rim": (48.0, 3.0),
    "spleen": (48.0, 2.0),
    "kidney": (32.0, 2.0),
    "pancreas": (42.0, 5.0),
    "bowel": (38.0, 6.0),
    "fluid": (15.0, 2.0),
    "cord": (35.0, 2.0),
    "cartilage": (110.0, 10.0),
    "airway_wall": (20.0, 6.0),
    "cancellous": (250.0, 60.0),
    "diploe": (650.0, 90.0),
    "bone": (1350.0, 180.0),
    "calcification": (320.0, 40.0),
    "falx": (65.0, 5.0),
    "table": (180.0, 20.0),
    "foam": (-850.0, 10.0),
}

# T1-weighted brain (MPRAGE-like, as in ADNI): white matter brighter than grey,
# CSF dark, fat bright, cortical bone without signal.
_MR_BRAIN: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0),
    "gas": (0.0, 0.0),
    "skin": (1400.0, 80.0),
    "fat": (2800.0, 120.0),
    "muscle": (1200.0, 60.0),
    "bone": (60.0, 20.0),
    "diploe": (1800.0, 200.0),
    "csf": (320.0, 30.0),
    "gm": (1450.0, 40.0),
    "wm": (2250.0, 40.0),
    "deep_gm": (1650.0, 40.0),
    "falx": (350.0, 30.0),
    "calcification": (900.0, 50.0),
    "blood": (500.0, 40.0),
    "cancellous": (1600.0, 150.0),
    "water": (300.0, 0.0),
    "table": (0.0, 0.0),
    "foam": (0.0, 0.0),
}

# Balanced SSFP-like chest: bright blood and fat, dark lung.
_MR_LUNG: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0),
    "gas": (0.0, 0.0),
    "lung": (90.0, 25.0),
    "fat": (2400.0, 120.0),
    "skin": (1100.0, 60.0),
    "muscle": (800.0, 50.0),
    "blood": (2700.0, 80.0),
    "myocardium": (750.0, 40.0),
    "bone": (40.0, 15.0),
    "cancellous": (1350.0, 120.0),
    "csf": (2900.0, 60.0),
    "cord": (1100.0, 40.0),
    "cartilage": (900.0, 50.0),
    "airway_wall": (500.0, 60.0),
    "liver": (900.0, 40.0),
    "fluid": (2600.0, 60.0),
    "table": (0.0, 0.0),
    "foam": (0.0, 0.0),
    "water": (2600.0, 0.0),
}

# T2-weighted, fat-suppressed abdomen (as in CHAOS T2-SPIR): fluid brightest,
# spleen brighter than liver, flowing blood dark.
_MR_LIVER: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0),
    "gas": (0.0, 0.0),
    "fat": (320.0, 40.0),
    "skin": (700.0, 40.0),
    "muscle": (450.0, 30.0),
    "liver": (650.0, 30.0),
    "vessel_liver": (140.0, 20.0),
    "blood": (160.0, 30.0),
    "bile": (3300.0, 60.0),
    "cyst": (3500.0, 50.0),
    "lesion": (1500.0, 120.0),
    "lesion_rim": (1000.0, 60.0),
    "spleen": (1200.0, 40.0),
    "kidney": (1500.0, 60.0),
    "pancreas": (800.0, 60.0),
    "bowel": (900.0, 100.0),
    "fluid": (3000.0, 80.0),
    "bone": (40.0, 15.0),
    "cancellous": (500.0, 60.0),
    "csf": (3200.0, 60.0),
    "cord": (900.0, 40.0),
    "cartilage": (600.0, 40.0),
    "calcification": (80.0, 20.0),
    "table": (0.0, 0.0),
    "foam": (0.0, 0.0),
    "water": (3000.0, 0.0),
}
