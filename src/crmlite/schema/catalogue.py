"""The standard modules of Zoho CRM and their standard fields, seeded into every new org.

Sources: ../shared/reference/zoho-crm-api.md §3.1 (system-mandatory fields), §4.1
(system duplicate-check field per module), §5.1-5.2 (data types and lengths).
Appointments__s and Services__s have no documented duplicate-check field; crmlite uses
their name fields (an assumption, said so in the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldSpec:
    api_name: str
    data_type: str
    length: int | None = None
    mandatory: bool = False
    read_only: bool = False
    label: str | None = None
    decimal_place: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def field_label(self) -> str:
        return self.label or self.api_name.replace("_", " ").strip()


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    api_name: str
    scope_name: str
    singular_label: str
    plural_label: str
    duplicate_check_field: str | None
    display_field: str
    fields: tuple[FieldSpec, ...]
    generated_type: str = "default"


def text(name: str, length: int = 255, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "text", length, **kw)


def picklist(name: str, *values: str, **kw: Any) -> FieldSpec:
    options = [{"display_value": v, "actual_value": v} for v in ("-None-", *values)]
    return FieldSpec(name, "picklist", 120, extra={"pick_list_values": options}, **kw)


def lookup(name: str, module: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "lookup", None, extra={"lookup_module": module}, **kw)


def email(name: str = "Email", **kw: Any) -> FieldSpec:
    return FieldSpec(name, "email", 100, **kw)


def phone(name: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "phone", 30, **kw)


def currency(name: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "currency", 16, decimal_place=2, **kw)


def date(name: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "date", None, **kw)


def integer(name: str, length: int = 9, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "integer", length, **kw)


def double(name: str, length: int = 16, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "double", length, decimal_place=2, **kw)


def boolean(name: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "boolean", None, **kw)


def textarea(name: str = "Description", length: int = 32000, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "textarea", length, **kw)


def website(name: str = "Website", **kw: Any) -> FieldSpec:
    return FieldSpec(name, "website", 255, **kw)


def line_items(name: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "subform", None, extra={"line_item": True}, **kw)


def owner() -> FieldSpec:
    return FieldSpec("Owner", "ownerlookup", 120, label="Owner")


# System fields every module carries: written by crmlite, never by a client.
SYSTEM_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("Created_By", "ownerlookup", 120, read_only=True, label="Created By"),
    FieldSpec("Modified_By", "ownerlookup", 120, read_only=True, label="Modified By"),
    FieldSpec("Created_Time", "datetime", None, read_only=True, label="Created Time"),
    FieldSpec("Modified_Time", "datetime", None, read_only=True, label="Modified Time"),
    FieldSpec("id", "bigint", 18, read_only=True, label="Record Id"),
)
SYSTEM_FIELD_NAMES = frozenset(f.api_name for f in SYSTEM_FIELDS)

LEAD_SOURCES = ("Advertisement", "Cold Call", "Employee Referral", "External Referral",
                "Online Store", "Partner", "Public Relations", "Sales Email Alias",
                "Seminar Partner", "Internal Seminar", "Trade Show", "Web Download",
                "Web Research", "Chat")
INDUSTRIES = ("ASP (Application Service Provider)", "Data/Telecom OEM", "ERP (Enterprise Resource "
              "Planning)", "Government/Military", "Large Enterprise", "ManagementISV",
              "MSP (Management Service Provider)", "Network Equipment Enterprise",
              "Non-management ISV", "Optical Networking", "Service Provider",
              "Small/Medium Enterprise", "Storage Equipment", "Storage Service Provider",
              "Systems Integrator", "Wireless Industry")
ORDER_STATUS = ("Created", "Approved", "Delivered", "Cancelled")


CARRIERS = ("FedEX", "UPS", "USPS", "DHL", "BlueDart")


def address(prefix: str, code: str = "Code") -> tuple[FieldSpec, ...]:
    """Zoho's address block: ``Billing_Code`` on Accounts and sales documents, but
    ``Mailing_Zip`` and ``Other_Zip`` on Contacts."""
    return (text(f"{prefix}_Street", 250), text(f"{prefix}_City", 100),
            text(f"{prefix}_State", 100), text(f"{prefix}_{code}", 30),
            text(f"{prefix}_Country", 100))


def sales_document(items: str, *extra: FieldSpec) -> tuple[FieldSpec, ...]:
    return (
        owner(),
        text("Subject", 255, mandatory=True),
        lookup("Deal_Name", "Deals"),
        lookup("Contact_Name", "Contacts"),
        lookup("Account_Name", "Accounts"),
        *extra,
        line_items(items, mandatory=True),
        currency("Sub_Total", read_only=True),
        currency("Discount"),
        currency("Tax"),
        currency("Adjustment"),
        currency("Grand_Total", read_only=True),
        *address("Billing"),
        *address("Shipping"),
        textarea("Terms_and_Conditions"),
        textarea(),
    )


STANDARD_MODULES: tuple[ModuleSpec, ...] = (
    ModuleSpec("Leads", "leads", "Lead", "Leads", "Email", "Full_Name", (
        owner(), text("Company", 200), picklist("Salutation", "Mr.", "Mrs.", "Ms.", "Dr.", "Prof."),
        text("First_Name", 40), text("Last_Name", 80, mandatory=True),
        text("Full_Name", 255, read_only=True), text("Designation", 100), email(),
        email("Secondary_Email"), phone("Phone"), phone("Fax"), phone("Mobile"), website(),
        picklist("Lead_Source", *LEAD_SOURCES),
        picklist("Lead_Status", "Attempted to Contact", "Contact in Future", "Contacted",
                 "Junk Lead", "Lost Lead", "Not Contacted", "Pre-Qualified", "Not Qualified"),
        picklist("Industry", *INDUSTRIES), integer("No_of_Employees"),
        currency("Annual_Revenue"), picklist("Rating", "Acquired", "Active", "Market Failed",
                                             "Project Cancelled", "Shut Down"),
        boolean("Email_Opt_Out"), text("Skype_ID", 50), text("Twitter", 50),
        text("Street", 250), text("City", 100), text("State", 100), text("Zip_Code", 30),
        text("Country", 100), textarea(),
    )),
    ModuleSpec("Accounts", "accounts", "Account", "Accounts", "Account_Name", "Account_Name", (
        owner(), text("Account_Name", 200, mandatory=True), text("Account_Site", 80),
        lookup("Parent_Account", "Accounts"), text("Account_Number", 40),
        picklist("Account_Type", "Analyst", "Competitor", "Customer", "Distributor",
                 "Integrator", "Investor", "Other", "Partner", "Press", "Prospect", "Reseller",
                 "Supplier", "Vendor"),
        picklist("Industry", *INDUSTRIES), currency("Annual_Revenue"),
        picklist("Rating", "Acquired", "Active", "Market Failed", "Project Cancelled",
                 "Shut Down"),
        phone("Phone"), phone("Fax"), website(), text("Ticker_Symbol", 30),
        picklist("Ownership", "Other", "Private", "Public", "Subsidiary", "Partnership",
                 "Government", "Privately Held", "Public Company"),
        integer("Employees"), integer("SIC_Code"), *address("Billing"), *address("Shipping"),
        textarea(),
    )),
    ModuleSpec("Contacts", "contacts", "Contact", "Contacts", "Email", "Full_Name", (
        owner(), picklist("Lead_Source", *LEAD_SOURCES),
        picklist("Salutation", "Mr.", "Mrs.", "Ms.", "Dr.", "Prof."), text("First_Name", 40),
        text("Last_Name", 80, mandatory=True), text("Full_Name", 255, read_only=True),
        lookup("Account_Name", "Accounts"), lookup("Vendor_Name", "Vendors"), email(),
        email("Secondary_Email"), text("Title", 100), text("Department", 100), phone("Phone"),
        phone("Home_Phone"), phone("Other_Phone"), phone("Fax"), phone("Mobile"),
        date("Date_of_Birth"), text("Assistant", 40), phone("Asst_Phone"),
        lookup("Reporting_To", "Contacts"), boolean("Email_Opt_Out"), text("Skype_ID", 50),
        text("Twitter", 50), *address("Mailing", "Zip"), *address("Other", "Zip"), textarea(),
    )),
    ModuleSpec("Deals", "deals", "Deal", "Deals", "Deal_Name", "Deal_Name", (
        owner(), currency("Amount"), text("Deal_Name", 120, mandatory=True),
        date("Closing_Date"), lookup("Account_Name", "Accounts"),
        picklist("Stage", "Qualification", "Needs Analysis", "Value Proposition",
                 "Identify Decision Makers", "Proposal/Price Quote", "Negotiation/Review",
                 "Closed Won", "Closed Lost", "Closed Lost to Competition", mandatory=True),
        picklist("Type", "Existing Business", "New Business"), integer("Probability", 3),
        currency("Expected_Revenue", read_only=True), text("Next_Step", 100),
        picklist("Lead_Source", *LEAD_SOURCES), lookup("Campaign_Source", "Campaigns"),
        lookup("Contact_Name", "Contacts"), textarea(),
    )),
    ModuleSpec("Campaigns", "campaigns", "Campaign", "Campaigns", "Campaign_Name",
               "Campaign_Name", (
        owner(), text("Campaign_Name", 120, mandatory=True),
        picklist("Type", "Advertisement", "Banner Ads", "Conference", "Direct mail", "Email",
                 "Others", "Partner", "Public Relations", "Referral Program", "Telemarketing",
                 "Trade Show", "Webinar"),
        picklist("Status", "Active", "Complete", "Inactive", "Planning"),
        date("Start_Date"), date("End_Date"), currency("Expected_Revenue"),
        currency("Budgeted_Cost"), currency("Actual_Cost"), integer("Expected_Response"),
        integer("Num_sent"), lookup("Parent_Campaign", "Campaigns"), textarea(),
    )),
    ModuleSpec("Cases", "cases", "Case", "Cases", "Subject", "Subject", (
        owner(), FieldSpec("Case_Number", "autonumber", 255, read_only=True),
        text("Subject", 255, mandatory=True),
        picklist("Status", "New", "On Hold", "Escalated", "Closed", mandatory=True),
        picklist("Case_Origin", "Email", "Phone", "Web", mandatory=True),
        picklist("Priority", "High", "Medium", "Low"),
        picklist("Type", "Problem", "Feature Request", "Question"),
        picklist("Case_Reason", "User did not attend any training", "Complex functionality",
                 "Existing problem", "Instructions not clear", "New problem"),
        lookup("Product_Name", "Products"), lookup("Account_Name", "Accounts"),
        lookup("Related_To", "Contacts"), lookup("Deal_Name", "Deals"), email(),
        phone("Phone"), text("Reported_By", 120), textarea(),
        textarea("Internal_Comments"), textarea("Solution"),
    )),
    ModuleSpec("Solutions", "solutions", "Solution", "Solutions", "Solution_Title",
               "Solution_Title", (
        owner(), FieldSpec("Solution_Number", "autonumber", 255, read_only=True),
        text("Solution_Title", 255, mandatory=True),
        picklist("Status", "Draft", "Reviewed", "Duplicate"), lookup("Product_Name", "Products"),
        boolean("Published"), textarea("Question"), textarea("Answer"),
    )),
    ModuleSpec("Products", "products", "Product", "Products", "Product_Name", "Product_Name", (
        owner(), text("Product_Name", 200, mandatory=True), text("Product_Code", 40),
        lookup("Vendor_Name", "Vendors"), boolean("Product_Active"),
        picklist("Manufacturer", "AltvetPet Inc.", "LexPon Inc.", "MetBeat Corp."),
        picklist("Product_Category", "Hardware", "Software", "CRM Applications"),
        date("Sales_Start_Date"), date("Sales_End_Date"), date("Support_Start_Date"),
        date("Support_Expiry_Date"), currency("Unit_Price"), currency("Commission_Rate"),
        FieldSpec("Tax", "multiselectpicklist", 1000), boolean("Taxable"),
        picklist("Usage_Unit", "Box", "Carton", "Dozen", "Each", "Hours", "Impressions", "Lb",
                 "M", "Pack", "Pages", "Pieces", "Quantity", "Reams", "Sheet", "Spiral Binder",
                 "Sq Ft"),
        double("Qty_Ordered"), double("Qty_in_Stock"), double("Reorder_Level"),
        double("Qty_in_Demand"), FieldSpec("Handler", "userlookup", 120), textarea(),
    )),
    ModuleSpec("Vendors", "vendors", "Vendor", "Vendors", "Vendor_Name", "Vendor_Name", (
        owner(), text("Vendor_Name", 120, mandatory=True), phone("Phone"), email(), website(),
        picklist("GL_Account", "Sales-Software", "Sales-Hardware", "Rental-Income",
                 "Interest-Income", "Sales Discount", "Freight-Expense"),
        text("Category", 100), text("Street", 250), text("City", 100), text("State", 100),
        text("Zip_Code", 30), text("Country", 100), textarea(),
    )),
    ModuleSpec("Price_Books", "pricebooks", "Price Book", "Price Books", "Price_Book_Name",
               "Price_Book_Name", (
        owner(), text("Price_Book_Name", 120, mandatory=True), boolean("Active"),
        picklist("Pricing_Model", "Flat", "Differential"),
        line_items("Pricing_Details"), textarea(),
    )),
    ModuleSpec("Quotes", "quotes", "Quote", "Quotes", "Subject", "Subject", sales_document(
        "Quoted_Items",
        picklist("Quote_Stage", "Draft", "Negotiation", "Delivered", "On Hold", "Confirmed",
                 "Closed Won", "Closed Lost"),
        date("Valid_Till"), text("Team", 120), picklist("Carrier", *CARRIERS),
    )),
    ModuleSpec("Sales_Orders", "salesorders", "Sales Order", "Sales Orders", "Subject", "Subject",
               sales_document(
        "Ordered_Items", lookup("Quote_Name", "Quotes"), text("Customer_No", 120),
        text("Purchase_Order", 120), date("Due_Date"), picklist("Status", *ORDER_STATUS),
        picklist("Carrier", *CARRIERS), currency("Excise_Duty"), currency("Sales_Commission"),
    )),
    ModuleSpec("Purchase_Orders", "purchaseorders", "Purchase Order", "Purchase Orders",
               "Subject", "Subject", sales_document(
        "Purchased_Items", lookup("Vendor_Name", "Vendors", mandatory=True),
        text("Requisition_No", 120), text("Tracking_Number", 120), date("PO_Date"),
        date("Due_Date"), picklist("Status", *ORDER_STATUS), picklist("Carrier", *CARRIERS),
        currency("Excise_Duty"), currency("Sales_Commission"),
    )),
    ModuleSpec("Invoices", "invoices", "Invoice", "Invoices", "Subject", "Subject", sales_document(
        "Invoiced_Items", lookup("Sales_Order", "Sales_Orders"), date("Invoice_Date"),
        date("Due_Date"), text("Purchase_Order", 120),
        picklist("Status", "Created", "Approved", "Delivered", "Cancelled"),
        currency("Excise_Duty"), currency("Sales_Commission"),
    )),
    ModuleSpec("Appointments__s", "appointments", "Appointment", "Appointments",
               "Appointment_Name", "Appointment_Name", (
        owner(), text("Appointment_Name", 255, mandatory=True),
        FieldSpec("Appointment_Start_Time", "datetime", None, mandatory=True),
        FieldSpec("Appointment_End_Time", "datetime", None), integer("Duration"),
        picklist("Status", "Upcoming", "In Progress", "Completed", "Cancelled", "Overdue"),
        lookup("Service_Name", "Services__s"), text("Location", 255), textarea(),
    )),
    ModuleSpec("Services__s", "services", "Service", "Services", "Service_Name", "Service_Name", (
        owner(), text("Service_Name", 255, mandatory=True), integer("Duration"),
        currency("Price"), picklist("Location", "Business Address", "Customer Address", "Online"),
        boolean("Active"), textarea(),
    )),
)


def custom_module_fields() -> tuple[FieldSpec, ...]:
    """A new custom module's fields: Name is its system duplicate-check field."""
    return (owner(), text("Name", 120, mandatory=True), email(), email("Secondary_Email"),
            boolean("Email_Opt_Out"), textarea())
