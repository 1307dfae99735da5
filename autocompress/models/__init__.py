from autocompress.models.student import StudentArch, build_student
from autocompress.models.teacher import TeacherCNN

__all__ = ["StudentArch", "TeacherCNN", "build_student"]
