"""Studio URL map (mounted at ``/studio/``)."""

from django.urls import path

from .views import account, generate, images, jobs, models, quality, review, training

app_name = "studio"

urlpatterns = [
    path("", account.home, name="home"),
    path("login/", account.login_view, name="login"),
    path("logout/", account.logout_view, name="logout"),
    path("organization/", account.switch_org, name="switch_org"),
    path("generate/", generate.generate, name="generate"),
    path("generate/variables/", generate.template_variables_partial, name="generate_variables"),
    path("jobs/", jobs.job_list, name="job_list"),
    path("jobs/<uuid:job_id>/", jobs.job_detail, name="job_detail"),
    path("jobs/<uuid:job_id>/status/", jobs.job_status, name="job_status"),
    path("jobs/<uuid:job_id>/cancel/", jobs.job_cancel, name="job_cancel"),
    path("review/", review.review_queue, name="review_queue"),
    path("review/bulk/", review.review_bulk, name="review_bulk"),
    path("review/report/", review.review_report, name="review_report"),
    path("review/<uuid:image_id>/", review.review_decide, name="review_decide"),
    path("gallery/", images.gallery, name="gallery"),
    path("images/<uuid:image_id>/", images.image_detail, name="image_detail"),
    path("images/<uuid:image_id>/file/", images.image_file, name="image_file"),
    path("models/", models.category_list, name="category_list"),
    path("models/<slug:slug>/", models.category_detail, name="category_detail"),
    path("models/<slug:slug>/promote/", models.promote, name="promote"),
    path("models/<slug:slug>/rubric/", quality.category_rubric, name="category_rubric"),
    path("templates/", quality.template_list, name="template_list"),
    path("templates/<slug:application>/rubric/", quality.template_rubric, name="template_rubric"),
    path("quality/", quality.quality_settings, name="quality_settings"),
    path("training/", training.training_list, name="training_list"),
    path("training/<uuid:job_id>/", training.training_detail, name="training_detail"),
    path("training/<uuid:job_id>/status/", training.training_status, name="training_status"),
    path("training/<uuid:job_id>/cancel/", training.training_cancel, name="training_cancel"),
    path(
        "training/validation/<int:image_id>/",
        training.validation_file,
        name="training_validation_file",
    ),
    path("models/<slug:slug>/rollback/", models.rollback, name="rollback"),
]
