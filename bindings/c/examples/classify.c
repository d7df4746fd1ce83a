/* An mxrt model from C: open it, print what it is, answer the texts given on the command line (labels and
 * probabilities for a classifier, the first values of each embedding for a sentence encoder), and show how a
 * failure reads. Build (from the repository root, after `cargo build --release -p mxrt-c`):
 *
 *   cc bindings/c/examples/classify.c -Ibindings/c/include -Ltarget/release -lmxrt_c -o classify
 *   LD_LIBRARY_PATH=target/release ./classify model.mxrt "a great film" "boring plot"
 */
#include <stdio.h>
#include <stdlib.h>

#include "mxrt.h"

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, mxrt_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.mxrt TEXT...\n", argv[0]);
        return 2;
    }
    const char *const *texts = (const char *const *)(argv + 2);
    size_t n = (size_t)(argc - 2);

    /* A missing file: a status and a message, no crash. */
    MxrtModel *missing = NULL;
    if (mxrt_model_open("no-such-model.mxrt", NULL, &missing) != MXRT_STATUS_OPEN_FAILED || missing != NULL)
        return fail("opening a missing file should fail");
    printf("error\t%s\n", mxrt_last_error());

    MxrtOptions options = {.backend = "cpu", .threads = 2, .max_batch = 8, .max_length = 0};
    MxrtModel *model = NULL;
    if (mxrt_model_open(argv[1], &options, &model) != MXRT_STATUS_OK)
        return fail("mxrt_model_open");

    size_t needed = 0;
    mxrt_model_describe_json(model, NULL, 0, &needed); /* asks the size: fails with BUFFER_TOO_SMALL */
    char *json = malloc(needed);
    if (json == NULL || mxrt_model_describe_json(model, json, needed, NULL) != MXRT_STATUS_OK)
        return fail("mxrt_model_describe_json");
    printf("model\t%s\n", json);
    free(json);

    size_t width = mxrt_model_output_width(model);
    float *values = malloc(n * width * sizeof(float));
    if (values == NULL)
        return 1;
    int task = mxrt_model_task(model);
    if (task == 0 || task == 1) {
        float *probabilities = malloc(n * width * sizeof(float));
        size_t *labels = malloc(n * sizeof(size_t));
        if (probabilities == NULL || labels == NULL)
            return 1;
        /* A buffer one float short is refused before anything runs. */
        if (mxrt_classify(model, texts, NULL, n, values, NULL, n * width - 1, NULL) != MXRT_STATUS_BUFFER_TOO_SMALL)
            return fail("a short buffer should be refused");
        if (mxrt_classify(model, texts, NULL, n, values, probabilities, n * width, labels) != MXRT_STATUS_OK)
            return fail("mxrt_classify");
        for (size_t i = 0; i < n; i++) {
            printf("text\t%s\t%s", texts[i], mxrt_model_label(model, labels[i]));
            for (size_t j = 0; j < width; j++)
                printf("\t%.6f", probabilities[i * width + j]);
            printf("\n");
        }
        free(probabilities);
        free(labels);
    } else if (task == 2) {
        if (mxrt_embed(model, texts, n, values, n * width) != MXRT_STATUS_OK)
            return fail("mxrt_embed");
        for (size_t i = 0; i < n; i++) {
            printf("text\t%s", texts[i]);
            for (size_t j = 0; j < width; j++)
                printf("\t%.6f", values[i * width + j]);
            printf("\n");
        }
    } else {
        fprintf(stderr, "this example takes text models; MLPs take mxrt_run\n");
        return 2;
    }
    free(values);
    mxrt_model_free(model);
    return 0;
}
