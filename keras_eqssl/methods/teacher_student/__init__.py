"""The teacher/student model kind: a student backbone and its EMA teacher on multi-crops, with registered parts.

The parts register in this import order, the order a config builds them in: GTSA's crop,
correspondence and rotation terms, then DINO's.
"""

from keras_eqssl.methods.teacher_student.term import TERMS, TeacherStudentTerm  # isort: skip
from keras_eqssl.methods.teacher_student.crop import CropTerm  # isort: skip
from keras_eqssl.methods.teacher_student.correspondence import CorrespondenceTerm  # isort: skip
from keras_eqssl.methods.teacher_student.rotation import RotationTerm  # isort: skip
from keras_eqssl.methods.teacher_student.dino import DINOTerm  # isort: skip
from keras_eqssl.methods.teacher_student.model import TeacherStudentModel  # isort: skip

__all__ = [
    "TERMS",
    "CorrespondenceTerm",
    "CropTerm",
    "DINOTerm",
    "RotationTerm",
    "TeacherStudentModel",
    "TeacherStudentTerm",
]
