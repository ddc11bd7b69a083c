/** Variants `compress --variants` may choose (the original is always measured: it is the reference). */
export const CHOOSABLE_VARIANTS = ['int8', 'fp16', 'student', 'student-int8'] as const;
