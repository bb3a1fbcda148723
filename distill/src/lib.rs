//! Distillation: teacher runners, the loss family, students pruned from the teacher.
