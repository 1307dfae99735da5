from autocompress.models.families import FAMILIES, get_family
from autocompress.models.resnet import ResNetArch, build_resnet
from autocompress.models.student import StudentArch, build_student
from autocompress.models.teacher import TeacherCNN

__all__ = ["FAMILIES", "ResNetArch", "StudentArch", "TeacherCNN", "build_resnet",
           "build_student", "get_family"]
